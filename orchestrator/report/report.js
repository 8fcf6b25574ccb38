// The sequence diagram's filters and selection. Plain script, no library:
// the page must work opened from disk with no network.
(function () {
  "use strict";
  const svg = document.getElementById("sequence");
  const details = document.getElementById("details");
  const data = JSON.parse(document.getElementById("arrow-data").textContent);
  const rows = Array.from(svg.querySelectorAll("g.row"));
  const lanes = Array.from(svg.querySelectorAll("line.lane"));
  const arrowCount = rows.filter((row) => row.classList.contains("arrow")).length;
  const filters = ["stage", "party", "outcome"].map((name) => document.getElementById("filter-" + name));

  function shown(row) {
    const [stage, party, outcome] = filters.map((select) => select.value);
    const d = row.dataset;
    return (!stage || d.stage === stage)
      && (!party || d.sender === party || d.receiver === party)
      && (!outcome || d.outcome === outcome);
  }

  function place(row, y) {
    row.style.display = "";
    row.setAttribute("transform", "translate(0," + y + ")");
    return y + Number(row.dataset.h);
  }

  // Stack the arrows that pass the filters; a stage's (or round's) band
  // shows when an arrow of that stage (and round) follows it.
  function layout() {
    let y = 0;
    let bands = [];
    let count = 0;
    for (const row of rows) {
      row.style.display = "none";
      if (row.classList.contains("marker")) {
        bands.push(row);
        continue;
      }
      if (!shown(row)) continue;
      for (const band of bands) {
        if (band.dataset.stage === row.dataset.stage
            && (!band.dataset.round || band.dataset.round === row.dataset.round)) {
          y = place(band, y);
        }
      }
      bands = [];
      y = place(row, y);
      count += 1;
    }
    svg.setAttribute("height", String(Math.max(y, 24)));
    for (const lane of lanes) lane.setAttribute("y2", String(y));
    document.getElementById("shown-count").textContent = count + " of " + arrowCount + " arrows shown";
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function entryLink(entry) {
    const link = element("a", entry.party + " #" + entry.index);
    link.href = "#e-" + entry.party + "-" + entry.index;
    return link;
  }

  function show(item) {
    details.replaceChildren(element("h3", item.title));
    const header = element("table", undefined, "kv");
    for (const [key, value] of item.header) {
      const tr = element("tr");
      tr.append(element("th", key), element("td", value));
      header.append(tr);
    }
    details.append(header, element("h4", "Log entries, both sides"));
    const entries = element("table", undefined, "entries");
    const head = element("tr");
    for (const name of ["entry", "time", "event", "refusal", "hash"]) head.append(element("th", name));
    entries.append(head);
    for (const entry of item.entries) {
      const tr = element("tr");
      const first = element("td");
      first.append(entryLink(entry));
      tr.append(first);
      for (const key of ["time", "event", "refusal", "hash"]) tr.append(element("td", entry[key]));
      entries.append(tr);
    }
    details.append(entries);
  }

  function select(row) {
    for (const old of svg.querySelectorAll("g.arrow.selected")) old.classList.remove("selected");
    row.classList.add("selected");
    show(data[Number(row.dataset.id)]);
  }

  svg.addEventListener("click", (event) => {
    const row = event.target.closest("g.arrow");
    if (row) select(row);
  });
  svg.addEventListener("keydown", (event) => {
    const row = event.target.closest("g.arrow");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      select(row);
    }
  });
  // a link to a log entry folded away in a party's page opens its fold
  function reveal() {
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!target) return;
    for (let fold = target.closest("details"); fold; fold = fold.parentElement.closest("details")) {
      fold.open = true;
    }
    target.scrollIntoView({ block: "center" });
  }

  for (const select of filters) select.addEventListener("change", layout);
  window.addEventListener("hashchange", reveal);
  layout();
  reveal();
})();
