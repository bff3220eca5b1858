// The model lifecycle panel: every alias of the upstreams file with its status and dates, and for deprecated
// ones the deployments and teams still calling them. Loaded when asked (a button), over the page's range.
// Strings from the API are rendered with textContent only.

import { getJson } from './api.js';
import { formatNumber } from './chart.js';
import { cell, fillRows } from './tables.js';

const $ = (id) => document.getElementById(id);
const hooks = { fail: (error) => console.warn(error), clearError: () => {}, days: () => 7 };
const shortDate = (iso) => (iso ? iso.slice(0, 10) : '');

/** Who still calls a deprecated alias: "owner (calls)", the most calls first. */
function callersText(model) {
  if (model.callers === null) return '';
  if (model.callers.length === 0) return 'nobody';
  return model.callers.map((c) => `${c.owner} (${formatNumber(c.requests)})`).join(', ');
}

function renderModels(report) {
  const rows = report.data.map((model) => {
    const row = document.createElement('tr');
    row.dataset.model = model.id;
    row.append(
      cell('td', model.id, 'mono'), cell('td', model.status), cell('td', shortDate(model.deprecated_at)),
      cell('td', shortDate(model.sunset_at)), cell('td', model.replacement || ''), cell('td', callersText(model), 'wrap'),
    );
    return row;
  });
  fillRows($('models'), rows, 6, 'No models configured.');
}

async function loadModels() {
  try {
    renderModels(await getJson('/api/admin/models', { days: hooks.days() }));
    hooks.clearError();
  } catch (error) {
    hooks.fail(error);
  }
}

/** The page's error display and its range in days (1 to 93), and the panel's button. */
export function connectModels({ fail, clearError, days }) {
  Object.assign(hooks, { fail, clearError, days });
  $('models-load').addEventListener('click', loadModels);
}
