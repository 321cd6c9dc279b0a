// Per-client figures for the dashboard, from one entry of `GET api/v1/clients` (Session.public):
//   examples/s  = examplesTrained / computeSeconds          (throughput while computing)
//   updates/min = 60 x updatesAccepted / (lastSeen - joined) (contribution rate since joining)
//   last seen   = now - lastSeen, seconds, on the server's clock

export function summariseClient(c, now) {
  const alive = Math.max(0, (c.lastSeen ?? 0) - (c.joined ?? 0));
  return {
    id: c.clientId,
    name: c.name ?? '',
    kind: [c.kind, c.backend].filter(Boolean).join(' / '),
    updates: c.updatesAccepted ?? 0,
    rejected: c.updatesRejected ?? 0,
    examplesPerSecond: c.computeSeconds > 0 ? c.examplesTrained / c.computeSeconds : null,
    updatesPerMinute: alive > 0 ? (60 * (c.updatesAccepted ?? 0)) / alive : null,
    staleness: c.lastStaleness ?? null,
    loss: c.lastLoss ?? null,
    lastSeenAgo: typeof now === 'number' && typeof c.lastSeen === 'number' ? Math.max(0, now - c.lastSeen) : null,
    state: c.cutOff ? 'cut off' : c.openTasks > 0 ? 'working' : 'idle',
  };
}
