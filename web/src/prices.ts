// Live prices over the gateway's WebSocket (/ws/prices), reconnecting with a capped, jittered
// backoff. Batched frames (`?batch=true`) keep the frame rate bounded however busy the feed is.

import type { PriceUpdate } from "./types";

export type FeedStatus = "connecting" | "live" | "reconnecting";

const MAX_BACKOFF_MS = 10_000;

export class PriceFeed {
  private attempt = 0;
  private troubled = false; // an error is shown, to clear once prices flow again

  constructor(
    private readonly onPrices: (updates: PriceUpdate[]) => void,
    private readonly onStatus: (status: FeedStatus, detail: string) => void,
  ) {}

  start(): void {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/prices?symbols=*&batch=true`);
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting", "");
    socket.onopen = () => {
      this.attempt = 0;
      this.onStatus("live", "");
    };
    socket.onmessage = (event: MessageEvent<string>) => this.receive(event.data);
    socket.onclose = (event: CloseEvent) => {
      const backoff = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
      this.attempt += 1;
      const delay = backoff / 2 + Math.random() * (backoff / 2);
      const why = event.reason || `code ${event.code}`;
      this.onStatus("reconnecting", `price stream closed (${why}), retrying in ${(delay / 1000).toFixed(1)} s`);
      window.setTimeout(() => this.start(), delay);
    };
  }

  private receive(data: string): void {
    const frame = JSON.parse(data) as PriceUpdate[] | { type?: string; message?: string };
    if (Array.isArray(frame)) {
      if (this.troubled) this.onStatus("live", "");
      this.troubled = false;
      this.onPrices(frame);
    } else if (frame.type === "error") {
      this.troubled = true;
      this.onStatus("live", `price stream error: ${frame.message ?? "unknown"}`);
    }
    // "subscribed" and "ping" frames need nothing.
  }
}
