// The container HEALTHCHECK: exits 0 when /healthz answers 200 on this host's PORT (default 8080).
const port = process.env.PORT || '8080';
fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  () => process.exit(1),
);
