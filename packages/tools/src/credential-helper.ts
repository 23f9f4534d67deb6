import { ToolFailedError } from '@strata/oci';
import { runTool } from './spawn';

/** What a docker credential helper returns for one server. */
export interface HelperCredentials {
  username: string;
  /** A password, or an identity (refresh) token when `username` is `<token>`. */
  secret: string;
}

function helperName(name: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new ToolFailedError(`docker-credential-${name}`, 'invalid credential helper name');
  }
  return `docker-credential-${name}`;
}

/**
 * `docker-credential-<name> get`, with the server URL on stdin. Resolves to undefined when the
 * helper has nothing for that server. The secret never appears in a thrown error: only the
 * helper's exit status and last stderr line do.
 */
export async function credentialHelperGet(
  name: string,
  server: string,
): Promise<HelperCredentials | undefined> {
  const file = helperName(name);
  let out: string;
  try {
    out = await runTool(file, ['get'], { input: server });
  } catch (e) {
    if (/credentials not found/i.test((e as Error).message)) return undefined;
    throw e;
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch {
    throw new ToolFailedError(file, 'printed something that is not JSON');
  }
  if (typeof doc.Secret !== 'string' || doc.Secret === '') return undefined;
  return { username: typeof doc.Username === 'string' ? doc.Username : '', secret: doc.Secret };
}

/** `docker-credential-<name> store`: save a username and secret for a server. */
export async function credentialHelperStore(
  name: string,
  server: string,
  creds: HelperCredentials,
): Promise<void> {
  await runTool(helperName(name), ['store'], {
    input: JSON.stringify({ ServerURL: server, Username: creds.username, Secret: creds.secret }),
  });
}

/** `docker-credential-<name> erase`: forget a server. */
export async function credentialHelperErase(name: string, server: string): Promise<void> {
  try {
    await runTool(helperName(name), ['erase'], { input: server });
  } catch (e) {
    if (/credentials not found/i.test((e as Error).message)) return;
    throw e;
  }
}
