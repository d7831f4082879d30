// SPDX-License-Identifier: MIT
// A small line chart on a canvas: points [{t, v}] (t in ms), x = time, y = value, with the
// minimum, maximum and last value printed. Draws only when asked (the caller does that at most
// once per animation frame); no allocation per point beyond the path.

export function drawChart(canvas, points, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300;
  const h = canvas.clientHeight || 120;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const style = getComputedStyle(canvas);
  const fg = style.color || '#333';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = fg;
  if (points.length === 0) {
    ctx.fillText(opts.empty || 'no data yet', 8, h / 2);
    return;
  }
  let min = Infinity;
  let max = -Infinity;
  for (const p of points) {
    if (p.v < min) {
      min = p.v;
    }
    if (p.v > max) {
      max = p.v;
    }
  }
  if (min === max) {
    min -= 1;
    max += 1;
  }
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const padL = 4;
  const padR = 4;
  const padT = 16;
  const padB = 14;
  const x = (t) => padL + ((t - t0) / (t1 - t0)) * (w - padL - padR);
  const y = (v) => padT + (1 - (v - min) / (max - min)) * (h - padT - padB);
  ctx.strokeStyle = opts.color || '#2a7ab0';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p.v)) : ctx.lineTo(x(p.t), y(p.v))));
  ctx.stroke();
  const fmt = opts.format || ((v) => (Math.abs(v) >= 1000 ? v.toFixed(0) : String(+v.toFixed(3))));
  const last = points[points.length - 1].v;
  ctx.fillText(`${opts.label ? opts.label + ': ' : ''}${fmt(last)}`, padL, 11);
  const range = `min ${fmt(min)}  max ${fmt(max)}`;
  ctx.fillText(range, w - padR - ctx.measureText(range).width, 11);
  const span = `${Math.round((t1 - t0) / 1000)} s`;
  ctx.fillText(span, w - padR - ctx.measureText(span).width, h - 2);
}
