// Regenerate docs/errors.md from the error catalog (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { ERRORS } from '../dist/src/errors.js';

const rows = Object.entries(ERRORS).map(
  ([name, e]) => `| \`${e.code}\` | ${e.status} | ${e.wsClose ?? ''} | ${e.message} | \`${name}\` |`,
);
const text = `# Error codes

Every error a client can see, from the one catalog in \`src/errors.ts\`. HTTP errors are
\`{"error":{"code":"<code>","message":"…","details"?:…}}\` with the status below; WebSocket
errors are \`{"type":"error","code":"<code>","message":"…","ref"?:…}\` frames, and the ones
with a close code end the connection with it. Match on \`code\`, never on \`message\`.
\`test/unit/errors-doc.test.ts\` fails when this file and the catalog disagree
(regenerate with \`npm run build && node scripts/errors-doc.mjs\`).

| code | HTTP | WS close | meaning | catalog name |
|---|---|---|---|---|
${rows.join('\n')}
`;
writeFileSync(new URL('../docs/errors.md', import.meta.url), text);
console.log(`docs/errors.md: ${rows.length} codes`);
