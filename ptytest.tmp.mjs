import pty from 'node-pty';
const exp = 3847*78;
for (let trial=0; trial<3; trial++) {
  await new Promise((resolve) => {
    let bytes=0, t0=performance.now(), last=0, n=0;
    const term = pty.spawn('base64', ['/tmp/p.bin'], {name:'xterm', cols:80, rows:24, cwd:'/tmp', env:{PATH:process.env.PATH}});
    term.onData(d => { bytes += Buffer.byteLength(d); n++; last = performance.now(); });
    term._socket.on('error', e => console.log('  socket error', e.code, 'at', (performance.now()-t0).toFixed(1), 'bytes', bytes));
    term._socket.on('close', () => console.log('  socket close at', (performance.now()-t0).toFixed(1), 'bytes', bytes));
    term.onExit(() => { console.log('  exit at', (performance.now()-t0).toFixed(1), 'bytes', bytes, 'chunks', n); setTimeout(() => { console.log('final', bytes, exp, 'last data at', (last-t0).toFixed(1)); resolve(); }, 500); });
  });
}
