// The validation curve (accuracy and loss) shared by the volunteer page and the dashboard.
// Chart.js is passed in (the page loads chart.umd.js as a classic script: the global `Chart`).
// History entries come from `GET api/v1/history`: {time, elapsed, version, steps, merges, valLoss,
// valAccuracy}.

/**
 * Points of the curve: x is seconds since the run started (`elapsed`, the origin the dashboard's
 * merges chart and `status.elapsed` use too) or the merge count (`merges`). Entries without
 * `elapsed` (servers before it) count from the first entry's `time`.
 */
export function curvePoints(history, xAxis = 'time') {
  const rows = history.filter((h) => h.valLoss !== null && h.valLoss !== undefined);
  const t0 = rows.length ? rows[0].time : 0;
  const seconds = (h) => (typeof h.elapsed === 'number' ? h.elapsed : h.time - t0);
  const x = (h) => (xAxis === 'merges' ? h.merges : Math.round(seconds(h) * 10) / 10);
  return {
    accuracy: rows.filter((h) => typeof h.valAccuracy === 'number').map((h) => ({ x: x(h), y: h.valAccuracy })),
    loss: rows.map((h) => ({ x: x(h), y: h.valLoss })),
  };
}

export function createCurveChart(Chart, canvas) {
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        { label: 'validation accuracy', data: [], yAxisID: 'accuracy', borderColor: '#1e8e3e', backgroundColor: '#1e8e3e', pointRadius: 2, tension: 0.2 },
        { label: 'validation loss', data: [], yAxisID: 'loss', borderColor: '#c0392b', backgroundColor: '#c0392b', pointRadius: 2, tension: 0.2 },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: 'linear', min: 0, title: { display: true, text: 'seconds' } }, // from the run's start
        accuracy: { type: 'linear', position: 'left', min: 0, max: 1, title: { display: true, text: 'accuracy' } },
        loss: { type: 'linear', position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'loss' } },
      },
    },
  });
  return {
    chart,
    /** Redraw from a full history; `xAxis` is `time` or `merges`. */
    update(history, xAxis = 'time') {
      const points = curvePoints(history, xAxis);
      chart.data.datasets[0].data = points.accuracy;
      chart.data.datasets[1].data = points.loss;
      chart.options.scales.x.title.text = xAxis === 'merges' ? 'merges' : 'seconds';
      chart.update('none');
    },
  };
}
