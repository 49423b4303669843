import express from 'express';

/** The naive baseline: a plain Express 5 handler with the extended urlencoded parser. */
const app = express();
app.post('/b24/events', express.urlencoded({ extended: true, limit: '256kb' }), (req, res) => {
  const body = req.body as { event?: string };
  res.json({ ok: Boolean(body.event) });
});
const server = app.listen(0, '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  process.stdout.write(`listening on http://127.0.0.1:${addr.port}\n`);
});
