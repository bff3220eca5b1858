// Stacked bar charts in plain SVG. Every label is set with textContent: series names are operator input.

const SVG_NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#64748b'];
const WIDTH = 640;
const HEIGHT = 240;
const MARGIN = { top: 10, right: 8, bottom: 24, left: 52 };
const X_LABELS = 6;

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const plain = new Intl.NumberFormat('en-US');

export const formatNumber = (value) => plain.format(value);
export const formatCompact = (value) => compact.format(value);
export const seriesColor = (index) => PALETTE[index % PALETTE.length];

function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (parent) parent.append(element);
  return element;
}

function text(tag, attributes, content, parent) {
  const element = svg(tag, attributes, parent);
  element.textContent = content;
  return element;
}

/** The smallest round number at or above value whose quarters are round too (the axis has 4 steps). */
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function drawAxis(root, ceiling, plotHeight) {
  for (let tick = 0; tick <= 4; tick += 1) {
    const y = MARGIN.top + plotHeight - (plotHeight * tick) / 4;
    svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: 'grid' }, root);
    text('text', { x: MARGIN.left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' },
      formatCompact((ceiling * tick) / 4), root);
  }
}

function drawPeriodLabels(root, periods, slot, labelPeriod) {
  const every = Math.max(1, Math.ceil(periods.length / X_LABELS));
  periods.forEach((period, index) => {
    if (index % every !== 0) return;
    const x = MARGIN.left + slot * (index + 0.5);
    text('text', { x, y: HEIGHT - 6, class: 'tick', 'text-anchor': 'middle' }, labelPeriod(period), root);
  });
}

function drawBars(root, periods, series, scale, slot, labelPeriod) {
  const barWidth = Math.max(1, slot * 0.78);
  const base = HEIGHT - MARGIN.bottom;
  periods.forEach((period, index) => {
    let top = base;
    series.forEach((entry, seriesIndex) => {
      const value = entry.values.get(period) || 0;
      if (value <= 0) return;
      const height = Math.max(value * scale, 0.75);
      top -= height;
      const bar = svg('rect', {
        x: MARGIN.left + slot * index + (slot - barWidth) / 2, y: top, width: barWidth, height,
        fill: seriesColor(seriesIndex), class: 'bar',
        'data-series': entry.name, 'data-period': new Date(period).toISOString(), 'data-value': value,
      }, root);
      text('title', {}, `${entry.name}, ${labelPeriod(period)}: ${formatNumber(value)} tokens`, bar);
    });
  });
}

function legend(series) {
  const list = document.createElement('ul');
  list.className = 'legend';
  series.forEach((entry, index) => {
    const item = document.createElement('li');
    item.dataset.series = entry.name;
    const swatch = svg('svg', { width: 12, height: 12, 'aria-hidden': 'true' });
    svg('rect', { width: 12, height: 12, rx: 2, fill: seriesColor(index) }, swatch);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = entry.name;
    const total = document.createElement('span');
    total.className = 'total';
    total.textContent = formatCompact(entry.total);
    total.title = `${formatNumber(entry.total)} tokens`;
    item.append(swatch, name, total);
    list.append(item);
  });
  return list;
}

/**
 * Draw one stacked bar per period into container.
 * periods: epoch milliseconds, in order; series: [{name, total, values: Map(period -> tokens)}], largest first.
 */
export function renderStackedBars(container, { periods, series, labelPeriod, title }) {
  container.replaceChildren();
  if (series.length === 0) {
    const empty = document.createElement('p');
    empty.className = 'empty';
    empty.textContent = 'No usage in this range.';
    container.append(empty);
    return;
  }
  const stacks = periods.map((period) => series.reduce((sum, entry) => sum + (entry.values.get(period) || 0), 0));
  const ceiling = niceCeiling(Math.max(1, ...stacks));
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = (WIDTH - MARGIN.left - MARGIN.right) / Math.max(1, periods.length);
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', class: 'stacked' });
  text('title', {}, title, root);
  drawAxis(root, ceiling, plotHeight);
  drawBars(root, periods, series, plotHeight / ceiling, slot, labelPeriod);
  drawPeriodLabels(root, periods, slot, labelPeriod);
  container.append(root, legend(series));
}
