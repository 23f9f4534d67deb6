// Writes the JSON Schemas defined in @strata/oci to /schemas (run after `npm run build`).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { allSchemas } = require('../packages/oci/dist/schemas.js');

const dir = path.join(__dirname, '..', 'schemas');
fs.mkdirSync(dir, { recursive: true });
for (const [file, schema] of Object.entries(allSchemas)) {
  fs.writeFileSync(path.join(dir, file), JSON.stringify(schema, null, 2) + '\n');
}
