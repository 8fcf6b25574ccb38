// The sequence diagram's filters and selection. Plain script, no library:
// the page must work opened from disk with no network.
(function () {
  "use strict";
  const svg = document.getElementById("sequence");
  const details = document.getElementById("details");
  const data = JSON.parse(document.getElementById("arrow-data").textContent);
  const rows = Array.from(svg.querySelectorAll("g.row"));
  const lanes = Array.from(svg.querySelectorAll("line.lane"));
  const names = Array.from(document.querySelectorAll("#lane-names g.lane-name"));
  const head = document.getElementById("lane-names");
  const view = svg.closest(".diagram");
  const geometry = svg.dataset;
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

  function num(name) {
    return Number(geometry[name]);
  }

  // Spread the lanes over the diagram's width: every lane when no filter
  // is set, else only those of the arrows shown (no empty lane is left).
  function spread(shownRows, filtered) {
    const used = new Set();
    for (const row of shownRows) {
      used.add(row.dataset.sender);
      used.add(row.dataset.receiver);
    }
    const order = lanes.map((lane) => lane.dataset.lane).filter((name) => !filtered || used.has(name));
    const room = Math.max(view.clientWidth - 2, 320);
    const gap = Math.max(num("minGap"), Math.min(num("maxGap"),
      Math.floor((room - num("left") - num("right")) / Math.max(order.length, 1))));
    const x = {};
    order.forEach((name, i) => { x[name] = num("left") + Math.floor(gap / 2) + gap * i; });
    const width = Math.max(room, num("left") + gap * order.length + num("right"));
    const staggered = gap < num("staggerBelow");
    for (const target of [svg, head]) target.setAttribute("width", String(width));
    head.setAttribute("height", String(staggered ? num("headStaggered") : num("head")));
    let i = 0;
    for (const name of names) {
      const lane = name.dataset.lane;
      name.style.display = lane in x ? "" : "none";
      if (!(lane in x)) continue;
      name.setAttribute("transform", "translate(" + x[lane] + "," + (staggered && i % 2 ? 28 : 0) + ")");
      i += 1;
    }
    for (const lane of lanes) {
      const at = x[lane.dataset.lane];
      lane.style.display = at === undefined ? "none" : "";
      if (at !== undefined) {
        lane.setAttribute("x1", String(at));
        lane.setAttribute("x2", String(at));
      }
    }
    for (const band of svg.querySelectorAll("g.marker rect")) band.setAttribute("width", String(width));
    for (const row of shownRows) {
      const x1 = x[row.dataset.sender];
      let x2 = x[row.dataset.receiver];
      if (x1 === x2) x2 = x1 + Math.floor(gap / 3);
      const shaft = row.querySelector("line.shaft");
      shaft.setAttribute("x1", String(x1));
      shaft.setAttribute("x2", String(x2));
      const hit = row.querySelector("rect.hit");
      hit.setAttribute("x", String(Math.min(x1, x2)));
      hit.setAttribute("width", String(Math.abs(x2 - x1)));
      const label = row.querySelector("text.label");
      const half = label.getComputedTextLength() / 2 + 4;
      label.setAttribute("x", String(Math.max(num("left") + half, Math.min((x1 + x2) / 2, width - half))));
      const reason = row.querySelector("text.reason");
      if (reason) {
        const start = Math.min(width - reason.getComputedTextLength() - 4, Math.min(x1, x2));
        reason.setAttribute("x", String(Math.max(num("left"), start)));
      }
    }
  }

  // Stack the arrows that pass the filters; a stage's (or round's) band
  // shows when an arrow of that stage (and round) follows it.
  function layout() {
    let y = 0;
    let bands = [];
    let count = 0;
    const shownRows = [];
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
      shownRows.push(row);
      count += 1;
    }
    svg.setAttribute("height", String(Math.max(y, 24)));
    for (const lane of lanes) lane.setAttribute("y2", String(y));
    spread(shownRows, filters.some((select) => select.value));
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
  let pending = 0;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(layout, 100);
  });
  layout();
  reveal();
})();
