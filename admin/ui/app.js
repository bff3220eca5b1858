// The usage page: wires the range picker, the sign-in box and the panels to the admin API.
// API strings are rendered with textContent only: team names and errors are not trusted markup.

import { ApiError, download, getJson, takeTokenFromFragment, token } from './api.js';
import { connectCustomers, loadCustomers, renderRefused } from './customers.js';
import { connectCredits } from './credits.js';
import { connectModels } from './models.js';
import { cell, fillRows, resourceCell } from './tables.js';
import { formatNumber, renderStackedBars } from './chart.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RANGES = {
  '48h': { granularity: 'hour', step: HOUR, count: 48, label: 'the last 48 hours' },
  '7d': { granularity: 'day', step: DAY, count: 7, label: 'the last 7 days' },
  '30d': { granularity: 'day', step: DAY, count: 30, label: 'the last 30 days' },
  '90d': { granularity: 'day', step: DAY, count: 90, label: 'the last 90 days' },
};
const LEDGER_STATUSES = ['pending', 'accepted', 'duplicate', 'error', 'retry', 'expired-rolled'];
const TOP_TEAMS = 10;
const LATEST_ERRORS = 8;
const ERROR_PAGE = 200;

const state = { range: '30d', generation: 0 };
const $ = (id) => document.getElementById(id);

const dayLabel = new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric' });
const hourLabel = new Intl.DateTimeFormat('en-US', {
  timeZone: 'UTC', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});
const shortHour = (period) => hourLabel.format(period).replace(',', '');
const clockLabel = new Intl.DateTimeFormat('en-US', {
  timeZone: 'UTC', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});

/** [start, end) in whole periods of the range's granularity, ending with the current one. */
function windowOf(name, now = Date.now()) {
  const range = RANGES[name];
  const end = Math.floor(now / range.step) * range.step + range.step;
  const start = end - range.count * range.step;
  const periods = Array.from({ length: range.count }, (_, index) => start + index * range.step);
  const labelPeriod = range.granularity === 'hour' ? shortHour : (period) => dayLabel.format(period);
  return { ...range, start, end, periods, labelPeriod };
}

const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

function usageParams(span, groupBy) {
  return { from: iso(span.start), to: iso(span.end), granularity: span.granularity, group_by: groupBy };
}

function seriesOf(report, column) {
  const byName = new Map();
  for (const row of report.data) {
    const name = row[column] ?? '(none)';
    const entry = byName.get(name) || { name, total: 0, values: new Map() };
    const period = Date.parse(row.period);
    entry.values.set(period, (entry.values.get(period) || 0) + row.total_tokens);
    entry.total += row.total_tokens;
    byName.set(name, entry);
  }
  return [...byName.values()]
    .filter((entry) => entry.total > 0)
    .sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
}

function topTeams(report) {
  const teams = new Map();
  for (const row of report.data) {
    const name = row.team ?? '(none)';
    const team = teams.get(name) || { name, requests: 0, errors: 0, tokens: 0, reasoning: 0, byok: 0 };
    team.requests += row.requests;
    team.errors += row.errors;
    team.tokens += row.total_tokens;
    team.reasoning += row.reasoning_tokens ?? 0;
    team.byok += row.byok_requests ?? 0;
    teams.set(name, team);
  }
  return [...teams.values()]
    .sort((a, b) => b.tokens - a.tokens || b.requests - a.requests || a.name.localeCompare(b.name))
    .slice(0, TOP_TEAMS);
}

function renderTeams(report) {
  const rows = topTeams(report).map((team) => {
    const row = document.createElement('tr');
    row.dataset.team = team.name;
    row.append(
      cell('th', team.name), cell('td', formatNumber(team.requests), 'num'),
      cell('td', formatNumber(team.errors), 'num'), cell('td', formatNumber(team.tokens), 'num'),
      cell('td', formatNumber(team.reasoning), 'num'), cell('td', formatNumber(team.byok), 'num'),
    );
    row.firstChild.scope = 'row';
    return row;
  });
  fillRows($('teams'), rows, 6, 'No usage in this range.');
}

function renderMetering(summaryPage, errorPage) {
  const tiles = LEDGER_STATUSES.map((status) => {
    const tile = document.createElement('div');
    tile.className = `tile status-${status}`;
    tile.dataset.status = status;
    tile.append(cell('dt', status), cell('dd', formatNumber(summaryPage.summary[status] || 0)));
    return tile;
  });
  $('metering-summary').replaceChildren(...tiles);
  const latest = [...errorPage.data]
    .sort((a, b) => (b.updated_at || b.hour).localeCompare(a.updated_at || a.hour))
    .slice(0, LATEST_ERRORS)
    .map((entry) => {
      const row = document.createElement('tr');
      row.append(
        cell('td', shortHour(Date.parse(entry.hour))), resourceCell(entry.resource_id),
        cell('td', entry.dimension), cell('td', formatNumber(entry.attempts), 'num'),
        cell('td', entry.last_error || '', 'wrap'),
      );
      return row;
    });
  fillRows($('metering-errors'), latest, 5, 'No metering errors in this range.');
}

function render(span, [plans, models, teams, summaryPage, errorPage]) {
  const chart = { periods: span.periods, labelPeriod: span.labelPeriod };
  renderStackedBars($('chart-plan'), { ...chart, series: seriesOf(plans, 'plan_id'), title: 'Tokens per plan' });
  renderStackedBars($('chart-model'), { ...chart, series: seriesOf(models, 'model_alias'), title: 'Tokens per model' });
  renderTeams(teams);
  renderRefused(teams);
  renderMetering(summaryPage, errorPage);
}

function fetchAll(span) {
  const ledger = { from: iso(span.start), to: iso(span.end) };
  return Promise.all([
    getJson('/api/admin/usage', usageParams(span, 'plan')),
    getJson('/api/admin/usage', usageParams(span, 'model')),
    getJson('/api/admin/usage', usageParams(span, 'team')),
    getJson('/api/admin/metering/ledger', { ...ledger, limit: 1 }),
    getJson('/api/admin/metering/ledger', { ...ledger, status: 'error', limit: ERROR_PAGE }),
  ]);
}

function setStatus(message) {
  $('status').textContent = message;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function showSignIn(message) {
  state.generation += 1; // drop answers still on their way
  $('dashboard').hidden = true;
  $('controls').hidden = true;
  $('sign-in').hidden = false;
  setStatus('');
  showError(message || '');
  $('token-input').focus();
}

function fail(error) {
  if (error instanceof ApiError && error.signInAgain) {
    token.clear();
    showSignIn(error.message);
    return;
  }
  setStatus('');
  showError(error instanceof ApiError ? error.message : 'Something went wrong while showing the data.');
  if (!(error instanceof ApiError)) console.warn(error);
}

async function load() {
  if (!token.get()) {
    showSignIn('');
    return;
  }
  const generation = ++state.generation;
  const span = windowOf(state.range);
  $('sign-in').hidden = true;
  $('controls').hidden = false;
  $('dashboard').hidden = false;
  $('dashboard').setAttribute('aria-busy', 'true');
  setStatus(`Loading ${span.label}…`);
  try {
    const answers = await fetchAll(span);
    if (generation !== state.generation) return;
    render(span, answers);
    await loadCustomers();
    showError('');
    setStatus(`Usage for ${span.label} (UTC), updated ${clockLabel.format(Date.now())} UTC.`);
  } catch (error) {
    if (generation === state.generation) fail(error);
  } finally {
    if (generation === state.generation) $('dashboard').removeAttribute('aria-busy');
  }
}

function selectRange(name) {
  state.range = name;
  for (const button of document.querySelectorAll('[data-range]')) {
    button.setAttribute('aria-pressed', String(button.dataset.range === name));
  }
}

async function downloadCsv() {
  const span = windowOf(state.range);
  try {
    await download('/api/admin/usage', { ...usageParams(span, 'team,plan,model'), format: 'csv' }, 'liutong-usage.csv');
  } catch (error) {
    fail(error);
  }
}

function wire() {
  connectCustomers({ fail, clearError: () => showError(''), formatHour: shortHour });
  const days = () => Math.ceil((RANGES[state.range].count * RANGES[state.range].step) / DAY);
  connectModels({ fail, clearError: () => showError(''), days });
  connectCredits({ fail, clearError: () => showError('') });
  for (const button of document.querySelectorAll('[data-range]')) {
    button.addEventListener('click', () => {
      selectRange(button.dataset.range);
      load();
    });
  }
  $('csv').addEventListener('click', downloadCsv);
  $('sign-out').addEventListener('click', () => {
    token.clear();
    showSignIn('');
    setStatus('Signed out.');
  });
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('token-input');
    if (!input.value.trim()) return;
    token.set(input.value);
    input.value = '';
    load();
  });
  window.addEventListener('hashchange', () => {
    takeTokenFromFragment();
    load();
  });
}

takeTokenFromFragment();
selectRange(state.range);
wire();
load();
