// Table rows for the usage page's panels. Every string goes in with textContent: API text is never markup.

export function cell(tag, content, className) {
  const element = document.createElement(tag);
  element.textContent = content;
  if (className) element.className = className;
  return element;
}

export function fillRows(table, rows, columns, emptyText) {
  const body = table.tBodies[0];
  if (rows.length === 0) {
    const empty = cell('td', emptyText, 'empty');
    empty.colSpan = columns;
    const row = document.createElement('tr');
    row.append(empty);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...rows);
}

/** A managed application's resource id is long: show its name, keep the whole id in the tooltip. */
export function resourceCell(resourceId) {
  const name = resourceId.split('/').filter(Boolean).pop() || resourceId;
  const element = cell('td', name, 'mono');
  element.title = resourceId;
  return element;
}
