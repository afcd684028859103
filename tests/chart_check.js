// Injected after the Vega bundle: records every vegaEmbed call; once the page has loaded and every chart
// has rendered, writes a JSON list, one entry per chart, into the element #chart-check: its target, the number of data
// marks' items (not axes, legends or titles) with finite coordinates, and their distinct x positions.
(function () {
  const embed = window.vegaEmbed;
  const charts = [];
  window.vegaEmbed = function (target, spec, options) {
    const promise = embed(target, spec, options);
    charts.push({ target: String(target), promise: promise });
    return promise;
  };
  Object.assign(window.vegaEmbed, embed);

  function inspect(node, found) {
    if (node.marktype !== undefined) {  // a mark: its items are drawn shapes (or groups holding marks)
      const isData = node.role === "mark" && node.marktype !== "group" && node.marktype !== "text";
      for (const item of node.items || []) {
        if (isData && Number.isFinite(item.x) && Number.isFinite(item.y)) {
          found.items += 1;
          found.xs.add(Math.round(item.x));
        }
        inspect(item, found);
      }
    } else if (node.items) {  // a group item: its marks
      for (const mark of node.items) inspect(mark, found);
    }
    return found;
  }

  window.addEventListener("load", function () {
    setTimeout(async function () {
      const results = [];
      for (const chart of charts) {
        try {
          const rendered = await chart.promise;
          await rendered.view.runAsync();
          const found = inspect(rendered.view.scenegraph().root, { items: 0, xs: new Set() });
          results.push({ chart: chart.target, items: found.items, distinct_x: found.xs.size });
        } catch (error) {
          results.push({ chart: chart.target, error: String(error) });
        }
      }
      const out = document.createElement("pre");
      out.id = "chart-check";
      out.textContent = JSON.stringify(results);
      document.body.appendChild(out);
    }, 0);
  });
})();
