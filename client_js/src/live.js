// Live server data for the page and the dashboard: subscribes to `api/v1/events` (server-sent
// events) and, on each event, refreshes the JSON views it concerns; polls as well, so a proxy that
// drops the event stream only slows the updates down. Refreshes are coalesced: at most one request
// per view in flight, at most one per `minInterval` seconds.

const VIEWS = ['status', 'history', 'clients'];
const VIEWS_BY_EVENT = {
  merge: ['status', 'clients'],
  evaluation: ['status', 'history'],
  client: ['status', 'clients'],
  state: ['status'],
};

export class LiveView {
  /**
   * @param {import('./protocol.js').WebnnClient} client
   * @param {{status?: Function, history?: Function, clients?: Function}} handlers one per view
   * @param {{pollSeconds?: number, minInterval?: number, EventSource?: Function}} [options]
   */
  constructor(client, handlers, { pollSeconds = 5, minInterval = 0.5, EventSource = globalThis.EventSource } = {}) {
    this.client = client;
    this.handlers = handlers;
    this.pollSeconds = pollSeconds;
    this.minInterval = minInterval;
    this.EventSource = EventSource;
    this.pending = new Map();
    this.source = null;
    this.timer = null;
    this.onEvent = null;
    this.connected = false;
  }

  views() {
    return VIEWS.filter((view) => this.handlers[view]);
  }

  start() {
    for (const view of this.views()) this.refresh(view);
    if (this.EventSource) {
      this.source = new this.EventSource(this.client.url('api/v1/events'));
      this.source.onopen = () => { this.connected = true; };
      this.source.onerror = () => { this.connected = false; };
      for (const [event, views] of Object.entries(VIEWS_BY_EVENT)) {
        this.source.addEventListener(event, (message) => {
          let data = null;
          try { data = JSON.parse(message.data); } catch { /* keep null */ }
          this.onEvent?.(event, data);
          for (const view of views) this.refresh(view);
        });
      }
    }
    this.timer = setInterval(() => {
      for (const view of this.views()) this.refresh(view);
    }, this.pollSeconds * 1000);
  }

  stop() {
    this.source?.close();
    clearInterval(this.timer);
  }

  refresh(view) {
    const handler = this.handlers[view];
    if (!handler || !VIEWS.includes(view)) return;
    const state = this.pending.get(view) ?? { busy: false, again: false, last: 0 };
    this.pending.set(view, state);
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    const wait = Math.max(0, state.last + this.minInterval * 1000 - Date.now());
    setTimeout(async () => {
      try {
        handler(await this.client[view]());
      } catch (err) {
        this.handlers.error?.(err);
      } finally {
        state.last = Date.now();
        state.busy = false;
        if (state.again) { state.again = false; this.refresh(view); }
      }
    }, wait);
  }
}
