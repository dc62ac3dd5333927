import autocannon from 'autocannon';
import { randomUUID } from 'node:crypto';
const n = Number(process.argv[2]);
const bodies = Array.from({length: 5000}, () => JSON.stringify({topic:'t'+Math.floor(Math.random()*16), event_id: randomUUID(), timestamp:'2026-11-24T10:00:00Z', source:'s', payload:{a:1}}));
let next = 0; const t0 = performance.now();
await Promise.all(Array.from({length:n},(_,i)=>autocannon({url:`http://127.0.0.1:1909${i+1}/publish`, connections: 10/n, amount: 5000/n, requests:[{method:'POST', headers:{'content-type':'application/json'}, setupRequest:(r)=>({...r, body: bodies[next++]})}]})));
console.log('seconds', ((performance.now()-t0)/1000).toFixed(2));
