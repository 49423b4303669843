import nodemailer, { type Transporter } from 'nodemailer';

/**
 * SMTP transports, one per SMTP URL, reused for every message (a transport per message
 * would open a connection and log in each time). Create one per worker; `close()` on stop.
 */
export interface Mailer {
  transport(smtpUrl: string): Transporter;
  close(): void;
}

export function createMailer(): Mailer {
  const transports = new Map<string, Transporter>();
  return {
    transport(smtpUrl) {
      let t = transports.get(smtpUrl);
      if (!t) {
        // A pooled transport keeps its connections open between messages.
        t = nodemailer.createTransport({ url: smtpUrl, pool: true });
        transports.set(smtpUrl, t);
      }
      return t;
    },
    close() {
      for (const t of transports.values()) t.close();
      transports.clear();
    },
  };
}
