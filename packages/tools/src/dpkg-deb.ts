/** dpkg-deb: what a built .deb says about itself. */
import { runTool } from './spawn';

/**
 * The control stanza of a .deb (`dpkg-deb --field`). Read with the host's dpkg-deb: the control
 * member is usually xz-compressed, which Node cannot read itself.
 */
export async function debControl(file: string): Promise<string> {
  return runTool('dpkg-deb', ['--field', file]);
}
