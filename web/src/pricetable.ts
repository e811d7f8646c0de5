// The latest price of every symbol, one row each, flashing up or down as it changes.

import type { PriceUpdate } from "./types";

export class PriceTable {
  private readonly rows = new Map<string, HTMLTableRowElement>();

  constructor(private readonly body: HTMLTableSectionElement) {}

  update(prices: PriceUpdate[]): void {
    for (const update of prices) {
      const row = this.rows.get(update.symbol) ?? this.addRow(update.symbol);
      const cells = row.cells;
      const before = cells[1].textContent;
      const price = Number(update.price);
      cells[1].textContent = trim(update.price);
      cells[2].textContent = new Date(Number(update.timestamp)).toISOString().replace("T", " ").slice(0, 19);
      if (before && Number(before) !== price) {
        row.classList.remove("up", "down");
        void row.offsetWidth; // restart the flash animation
        row.classList.add(price > Number(before) ? "up" : "down");
      }
    }
  }

  private addRow(symbol: string): HTMLTableRowElement {
    const row = document.createElement("tr");
    row.dataset.symbol = symbol;
    for (const text of [symbol, "", ""]) row.insertCell().textContent = text;
    row.cells[1].className = "price";
    const after = [...this.rows.keys()].sort().find((s) => s > symbol);
    this.body.insertBefore(row, after === undefined ? null : (this.rows.get(after) ?? null));
    this.rows.set(symbol, row);
    return row;
  }
}

/** "62650.59000000" → "62650.59": Binance pads to 8 decimals. */
function trim(price: string): string {
  return price.includes(".") ? price.replace(/0+$/, "").replace(/\.$/, "") : price;
}
