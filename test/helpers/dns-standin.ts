import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import * as packet from 'dns-packet';

export interface DnsStandin {
  /** `127.0.0.1:port`, for a resolver's servers. */
  server: string;
  /** A, AAAA and MX records answered (MX: exchangers, by preference). */
  names: Map<string, { a?: string[]; aaaa?: string[]; mx?: string[] }>;
  /** Names whose queries are read and never answered, like a name server that drops them. */
  hang: (name: string) => boolean;
  /** Queries received, by name. */
  asked: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A name server on loopback (UDP): answers the names it holds, NXDOMAIN for the rest, and
 * nothing at all for the names `hang` picks.
 */
export async function startDnsStandin(): Promise<DnsStandin> {
  const socket = dgram.createSocket('udp4');
  const standin: DnsStandin = {
    server: '',
    names: new Map(),
    hang: () => false,
    asked: new Map(),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg, from) => {
    let query: packet.Packet;
    try {
      query = packet.decode(msg);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    standin.asked.set(name, (standin.asked.get(name) ?? 0) + 1);
    if (standin.hang(name)) return;
    const held = standin.names.get(name);
    const data =
      question.type === 'A' ? held?.a : question.type === 'AAAA' ? held?.aaaa : undefined;
    const answers: packet.Answer[] =
      question.type === 'MX'
        ? (held?.mx ?? []).map((exchange, i) => ({
            type: 'MX' as const,
            name: question.name,
            ttl: 60,
            class: 'IN' as const,
            data: { preference: 10 * (i + 1), exchange },
          }))
        : (data ?? []).map((address) => ({
            type: question.type as 'A',
            name: question.name,
            ttl: 60,
            class: 'IN' as const,
            data: address,
          }));
    const reply = packet.encode({
      id: query.id,
      type: 'response',
      // The low 4 bits are the RCODE: 3 is NXDOMAIN.
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (held ? 0 : 3),
      questions: [question],
      answers,
    });
    socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  standin.server = `127.0.0.1:${(socket.address() as AddressInfo).port}`;
  return standin;
}
