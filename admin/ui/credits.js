// The prepaid credit panel: every owner's balance, and the lots that expire in the next 30 days (what the
// customer loses unless it spends them). Loaded when asked (a button). Strings from the API are rendered with
// textContent only.

import { getJson } from './api.js';
import { formatNumber } from './chart.js';
import { cell, fillRows } from './tables.js';

const $ = (id) => document.getElementById(id);
const hooks = { fail: (error) => console.warn(error), clearError: () => {} };
const shortDate = (iso) => (iso ? iso.slice(0, 10) : '');

/** "12,000 on 2027-01-04 (gpt-4o pack)", the soonest first, as the API orders them. */
function expiringText(owner) {
  if (owner.expiring.length === 0) return 'none';
  return owner.expiring
    .map((lot) => `${formatNumber(lot.left)} on ${shortDate(lot.expires_at)}${lot.model ? ` (${lot.model} pack)` : ''}`)
    .join(', ');
}

function renderCredits(report) {
  const rows = report.data.map((owner) => {
    const row = document.createElement('tr');
    row.dataset.owner = owner.owner;
    row.append(
      cell('td', owner.owner, 'mono'), cell('td', formatNumber(owner.available), 'num'),
      cell('td', formatNumber(owner.reserved), 'num'), cell('td', formatNumber(owner.shortfall), 'num'),
      cell('td', expiringText(owner), 'wrap'),
    );
    return row;
  });
  fillRows($('credits'), rows, 5, 'No prepaid balances.');
}

async function loadCredits() {
  try {
    renderCredits(await getJson('/api/admin/credits'));
    hooks.clearError();
  } catch (error) {
    hooks.fail(error);
  }
}

/** The page's error display, and the panel's button. */
export function connectCredits({ fail, clearError }) {
  Object.assign(hooks, { fail, clearError });
  $('credits-load').addEventListener('click', loadCredits);
}
