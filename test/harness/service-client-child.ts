/**
 * A client process for the service tests, to be killed mid-transfer: it connects to the
 * socket given as argv[2], opens argv[3], starts GetBlob of argv[4] (argv[5] bytes), reads a
 * little, says "reading" on stdout, and then waits, holding the transfer, until it is killed.
 */
import { ImageProxy } from '../../clients/typescript';
import { SeqpacketChannel } from '../../clients/typescript/seqpacket-channel';
import { native } from '../../protocol/seqpacket/native';

async function main(): Promise<void> {
  const [socketPath, reference, digest, size] = process.argv.slice(2);
  if (socketPath === undefined || reference === undefined || digest === undefined || size === undefined) throw new Error('usage: SOCKET REFERENCE DIGEST SIZE');
  const proxy = ImageProxy.connect(new SeqpacketChannel(native.connectSeqpacket(socketPath), { peerName: 'service' }));
  await proxy.initialize();
  const image = await proxy.openImage(reference);
  const transfer = await proxy.getBlob(image, digest, Number(size));
  transfer.stream.once('data', () => {
    transfer.stream.pause();
    process.stdout.write('reading\n');
  });
  // Never finishes: the test kills this process with the transfer in flight.
  setInterval(() => undefined, 60_000);
}

main().catch((err: unknown) => {
  process.stderr.write(`service client: ${String(err)}\n`);
  process.exit(1);
});
