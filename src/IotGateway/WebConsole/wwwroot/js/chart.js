// A line chart of an aggregate (avg per interval, min–max band) drawn as SVG: no library.

const ns = "http://www.w3.org/2000/svg";
const width = 960;
const height = 240;
const pad = { left: 52, right: 12, top: 12, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

const number = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 4 });
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

// items: [{ start, count, min, max, avg }], from/to: Dates, intervalSeconds: number.
export function drawChart({ items, from, to, intervalSeconds, field }) {
  const points = items.filter((i) => i.count > 0 && i.avg !== null);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  const t0 = from.getTime();
  const t1 = to.getTime();
  const span = Math.max(1, t1 - t0);
  const timeFormat = span > 36 * 3600_000 ? day : clock;
  if (points.length === 0) {
    root.setAttribute("aria-label", `No numeric value of ${field} in this range.`);
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, `No value of ${field} in this range`));
    return root;
  }

  let lo = Math.min(...points.map((p) => p.min));
  let hi = Math.max(...points.map((p) => p.max));
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (t) => pad.left + ((t - t0) / span) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
  const mid = (p) => new Date(p.start).getTime() + (intervalSeconds * 1000) / 2;

  // Axes: three value lines, start and end times.
  for (const v of [lo, (lo + hi) / 2, hi]) {
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, number.format(v)));
  }

  root.append(svg("text", { x: pad.left, y: height - 8, class: "axis" }, timeFormat.format(from)));
  root.append(svg("text", { x: width - pad.right, y: height - 8, "text-anchor": "end", class: "axis" }, timeFormat.format(to)));

  // A gap of more than one interval without readings breaks the line and the band.
  const runs = [];
  for (const p of points) {
    const last = runs.at(-1)?.at(-1);
    if (last && new Date(p.start) - new Date(last.start) <= intervalSeconds * 1000) runs.at(-1).push(p);
    else runs.push([p]);
  }

  for (const run of runs) {
    const upper = run.map((p) => `${x(mid(p))},${y(p.max)}`);
    const lower = run.map((p) => `${x(mid(p))},${y(p.min)}`).reverse();
    root.append(svg("polygon", { points: [...upper, ...lower].join(" "), class: "band" }));
    root.append(svg("polyline", { points: run.map((p) => `${x(mid(p))},${y(p.avg)}`).join(" "), class: "line" }));
  }

  for (const p of points) {
    const dot = svg("circle", { cx: x(mid(p)), cy: y(p.avg), r: points.length > 60 ? 1.5 : 3, class: "point" });
    dot.append(svg("title", {}, `${timeFormat.format(new Date(p.start))}: avg ${number.format(p.avg)} (min ${number.format(p.min)}, max ${number.format(p.max)}, ${p.count} readings)`));
    root.append(dot);
  }

  const avgAll = points.reduce((s, p) => s + p.avg * p.count, 0) / points.reduce((s, p) => s + p.count, 0);
  root.setAttribute("aria-label", `${field} from ${timeFormat.format(from)} to ${timeFormat.format(to)}: lowest ${number.format(lo)}, ` +
    `highest ${number.format(hi)}, average ${number.format(avgAll)}, latest average ${number.format(points.at(-1).avg)}.`);
  return root;
}

// Numeric fields of a JSON payload as the aggregate route names them ("temp", "sensors.temp").
export function numericFields(payload, prefix = "", depth = 0, found = []) {
  if (!payload || typeof payload !== "object" || Array.isArray(payload) || depth > 4) return found;
  for (const [name, value] of Object.entries(payload)) {
    if (!/^[\p{L}\p{N}_-]{1,128}$/u.test(name)) continue;
    const path = prefix ? `${prefix}.${name}` : name;
    if (typeof value === "number") found.push(path);
    else numericFields(value, path, depth + 1, found);
  }

  return found;
}

// The shortest interval the route accepts that keeps a range within about 150 points.
const intervals = [["10s", 10], ["1m", 60], ["5m", 300], ["15m", 900], ["1h", 3600], ["2h", 7200], ["6h", 21600], ["12h", 43200], ["1d", 86400], ["7d", 604800]];
export function intervalFor(spanSeconds) {
  return intervals.find(([, s]) => spanSeconds / s <= 150) ?? intervals.at(-1);
}
