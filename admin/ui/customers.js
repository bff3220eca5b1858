// The Marketplace customers panel (each deployment with a Suspend/Resume button; the reason asked for goes to
// the audit log) and the refused-calls panel. Strings from the API are rendered with textContent only.

import { ApiError, getJson, postJson } from './api.js';
import { formatNumber } from './chart.js';
import { cell, fillRows, resourceCell } from './tables.js';

const CUSTOMERS = 50;
const TOP_REFUSED = 10;
const $ = (id) => document.getElementById(id);
const hooks = { fail: (error) => console.warn(error), clearError: () => {}, formatHour: (t) => new Date(t).toISOString() };

/** The page's error display and hour format, so this panel reports like the others. */
export function connectCustomers({ fail, clearError, formatHour }) {
  Object.assign(hooks, { fail, clearError, formatHour });
}

/** Marketplace deployments with a suspend/resume button each; the reason asked for goes to the audit log. */
function renderCustomers(page) {
  const rows = page.data.filter((d) => d.state.toLowerCase() !== 'deleted').map((deployment) => {
    const row = document.createElement('tr');
    row.dataset.deployment = deployment.deployment_id;
    const access = deployment.suspended
      ? `suspended ${hooks.formatHour(Date.parse(deployment.suspended_at))}${deployment.suspended_reason ? `: ${deployment.suspended_reason}` : ''}`
      : 'active';
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = deployment.suspended ? 'Resume' : 'Suspend';
    button.addEventListener('click', () => setSuspended(deployment, !deployment.suspended));
    const action = document.createElement('td');
    action.append(button);
    row.append(resourceCell(deployment.application_id), cell('td', deployment.plan_id || ''),
      cell('td', deployment.state), cell('td', access, 'wrap'), action);
    return row;
  });
  fillRows($('customers'), rows, 5, 'No Marketplace deployments.');
}

export async function loadCustomers() {
  $('customers-note').hidden = true;
  try {
    renderCustomers(await getJson('/api/admin/deployments', { limit: CUSTOMERS }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 503) {
      $('customers-note').textContent = error.message;
      $('customers-note').hidden = false;
      fillRows($('customers'), [], 5, 'Not available.');
      return;
    }
    throw error;
  }
}

async function setSuspended(deployment, suspend) {
  const verb = suspend ? 'suspend' : 'resume';
  const reason = window.prompt(`Reason to ${verb} this customer (recorded in the audit log):`, '');
  if (reason === null) return;
  try {
    await postJson(`/api/admin/deployments/${deployment.deployment_id}/${verb}`, reason ? { reason } : {});
    await loadCustomers();
    hooks.clearError();
  } catch (error) {
    hooks.fail(error);
  }
}

/** Refused calls (401/403/429) of the range, the most frequent first; an unresolved key has no owner. */
export function renderRefused(report) {
  const refused = report.refused || { data: [] };
  const rows = refused.data.slice(0, TOP_REFUSED).map((entry) => {
    const row = document.createElement('tr');
    row.append(
      cell('td', entry.owner || '(unknown key)'), cell('td', entry.key, 'mono'),
      cell('td', String(entry.status), 'num'), cell('td', entry.code), cell('td', formatNumber(entry.count), 'num'),
    );
    return row;
  });
  fillRows($('refused'), rows, 5, 'No refused calls in this range.');
}
