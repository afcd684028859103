// Injected after the Vega bundle: drives the report's ε explorer as a reader does, through the page's own
// inputs (the slider to 0, then to 0.3; the second digit of the list; the second model to make the images on)
// and records what the explorer shows after each step: its parameters, each image's URL and the pixels drawn
// where it is (a fingerprint and their spread, from the view rendered to a canvas: the page itself draws SVG),
// and the answers the bars write. Writes the list of states as JSON into the element #explorer-check.
(function () {
  const embed = window.vegaEmbed;
  let explorer = null;
  window.vegaEmbed = function (target, spec, options) {
    const promise = embed(target, spec, options);
    if (String(target) === "#chart-explorer") explorer = promise;
    return promise;
  };
  Object.assign(window.vegaEmbed, embed);

  function collect(node, dx, dy, found) {  // image items with their place on the canvas, and the bars' words
    if (node.marktype !== undefined) {
      for (const item of node.items || []) {
        if (node.marktype === "image") {
          const b = item.bounds;  // in its group's coordinates
          found.images.push({ panel: item.datum.panel, url: item.url, x: dx + b.x1, y: dy + b.y1,
                              width: b.x2 - b.x1, height: b.y2 - b.y1 });
        } else if (node.marktype === "text" && item.datum && item.datum.says !== undefined) {
          found.answers.push({ model: item.datum.model, says: item.datum.says, answer: item.datum.answer });
        }
        collect(item, dx, dy, found);
      }
    } else if (node.items) {  // a group: its marks, offset by its position
      for (const mark of node.items) collect(mark, dx + (node.x || 0), dy + (node.y || 0), found);
    }
    return found;
  }

  function pixels(canvas, box) {  // an FNV-1a hash of the RGBA bytes of the box's middle (20 pixels in from each
    // edge: clear of the background whatever the rounding), and the spread of their grey levels
    const data = canvas.getContext("2d").getImageData(Math.round(box.x + 20), Math.round(box.y + 20),
                                                      Math.round(box.width - 40), Math.round(box.height - 40)).data;
    let hash = 2166136261, low = 255, high = 0;
    for (let i = 0; i < data.length; i++) {
      hash = Math.imul(hash ^ data[i], 16777619) >>> 0;
      if (i % 4 === 0) { low = Math.min(low, data[i]); high = Math.max(high, data[i]); }
    }
    return { hash: hash, spread: high - low };
  }

  async function state(view) {
    await view.runAsync();
    const [x, y] = view.origin();
    const found = collect(view.scenegraph().root, x, y, { images: [], answers: [] });
    const canvas = await view.toCanvas();  // once its images have loaded
    for (const image of found.images) Object.assign(image, pixels(canvas, image));
    return { eps: view.signal("eps"), digit: view.signal("digit"), made_on: view.signal("made_on"), ...found };
  }

  function input(selector, change) {
    const element = document.querySelector("#chart-explorer " + selector);
    change(element);
    element.dispatchEvent(new Event(element.type === "range" ? "input" : "change", { bubbles: true }));
  }

  window.addEventListener("load", function () {
    setTimeout(async function () {
      const out = document.createElement("pre");
      out.id = "explorer-check";
      try {
        const view = (await explorer).view;
        const states = [await state(view)];
        input("input[type=range]", (e) => { e.value = "0"; });
        states.push(await state(view));
        input("input[type=range]", (e) => { e.value = "0.3"; });
        states.push(await state(view));
        input("select", (e) => { e.selectedIndex = 1; });
        states.push(await state(view));
        input("input[type=radio]:not(:checked)", (e) => { e.checked = true; });
        states.push(await state(view));
        out.textContent = JSON.stringify(states);
      } catch (error) {
        out.textContent = JSON.stringify({ error: String(error) });
      }
      document.body.appendChild(out);
    }, 0);
  });
})();
