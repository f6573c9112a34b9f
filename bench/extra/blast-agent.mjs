import WebSocket from 'ws';
const N = Number(process.env.BLAST_N ?? 20000);
const TYPE = process.env.BLAST_TYPE ?? 'status';
const ws = new WebSocket(process.env.SESSION_MANAGER_URL.replace(/^http/, 'ws') + '/agent?token=' + encodeURIComponent(process.env.SESSION_TOKEN));
ws.on('message', (raw) => {
  const f = JSON.parse(raw.toString());
  if (f.type !== 'prompt') return;
  const t0 = Date.now();
  for (let i = 0; i < N; i++) ws.send(JSON.stringify(TYPE === 'message' ? { type: 'message', role: 'assistant', content: `part ${i}` } : { type: 'status', state: 'working', detail: `step ${i}` }));
  ws.send(JSON.stringify({ type: 'message', role: 'assistant', content: 'blast done', ref: 'last' }));
  process.stdout.write(`sent ${N} in ${Date.now() - t0} ms\r\n`);
});
setInterval(() => {}, 1000);
