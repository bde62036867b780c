(function () {
  function pointCount(trace) {
    if (typeof trace._length === "number") return trace._length;
    var most = 0;
    ["x", "y", "values"].forEach(function (key) {
      var column = trace[key];
      if (column && column.length !== undefined) {
        var count = 0;
        for (var i = 0; i < column.length; i++) {
          if (column[i] !== null && column[i] !== undefined) count++;
        }
        most = Math.max(most, count);
      }
    });
    return most;
  }
  var figures = JSON.parse(document.getElementById("report-figures").textContent);
  var counts = {};
  Object.keys(figures).forEach(function (id) {
    var figure = figures[id];
    var element = document.getElementById(id);
    try {
      Plotly.newPlot(element, figure.data, figure.layout, {responsive: true, displaylogo: false});
      counts[element.dataset.title] = element._fullData
        .map(pointCount)
        .reduce(function (a, b) { return a + b; }, 0);
    } catch (error) {
      window.reportError(error && error.stack ? error.stack : String(error));
    }
  });
  document.body.dataset.plots = JSON.stringify(counts);
})();
