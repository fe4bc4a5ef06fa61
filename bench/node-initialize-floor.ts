#!/usr/bin/env node
/**
 * The least a Node program does to answer the 0.2.x Initialize, the floor under layerpipe's
 * spawn → Initialize in startup-bench (spawned by the client as a proxy): layerpipe's SEQPACKET
 * module and native addon on fd 0, one JSON reply per request, exit at Shutdown or at the end of
 * the socket. Nothing else: no flags, policy, configuration or transports.
 */
import { SeqpacketSocket } from '../protocol/seqpacket/socket';

const socket = new SeqpacketSocket(0);
socket.on('packet', (packet) => {
  const { method } = JSON.parse(packet.data.toString('utf8')) as { method?: string };
  const reply = { success: true, value: method === 'Initialize' ? '0.2.8' : null, pipeid: 0, error_code: '', error: '' };
  void socket.send(Buffer.from(JSON.stringify(reply))).then(() => {
    if (method === 'Shutdown') process.exit(0);
  });
});
socket.on('end', () => process.exit(0));
