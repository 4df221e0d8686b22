// report.html's one script, inlined by report/html.py: sorts the per-case tables.
// The page reads fully without it; the tables are written sorted by cost.
"use strict";
for (const table of document.querySelectorAll("table.sortable")) {
  const body = table.tBodies[0];
  for (const button of table.querySelectorAll("th button[data-column]")) {
    button.addEventListener("click", () => {
      const header = button.closest("th");
      const column = Number(button.dataset.column);
      const numeric = button.dataset.type !== "text";
      const descending = header.getAttribute("aria-sort") !== "descending";
      for (const other of table.querySelectorAll("th[aria-sort]")) {
        other.removeAttribute("aria-sort");
      }
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      const key = (row) => {
        const value = row.cells[column].dataset.value;
        if (value === undefined || value === "") return null;
        return numeric ? Number(value) : value;
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        if (x === null || y === null) return (x === null) - (y === null); // unknown last
        const order = numeric ? x - y : String(x).localeCompare(String(y));
        return descending ? -order : order;
      });
      body.append(...rows);
    });
  }
}
