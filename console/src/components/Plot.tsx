// Charts with uPlot: small (~50 kB) and fast, drawing on a canvas, and with no dependencies
// of its own, so the console stays light and works offline.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export type Series = { label: string; values: (number | null)[]; color: string; dash?: boolean; bars?: boolean };

const barPaths = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 60] }) : undefined;

/**
 * One chart: `x` and one or more series over it. It follows its box's width, so it fits a
 * narrow window; `square` keeps height equal to width (ROC curves).
 */
export function Plot({
  x,
  series,
  xLabel,
  yLabel,
  testid,
  height = 260,
  square = false,
  xRange,
  yRange,
}: {
  x: number[];
  series: Series[];
  xLabel: string;
  yLabel: string;
  testid: string;
  height?: number;
  square?: boolean;
  xRange?: [number, number];
  yRange?: [number, number];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const size = () => {
      const w = Math.max(200, Math.min(el.clientWidth, square ? 420 : 10_000));
      return { width: w, height: square ? Math.min(w, 420) : height };
    };
    const opts: uPlot.Options = {
      ...size(),
      scales: {
        x: { time: false, ...(xRange ? { range: xRange } : {}) },
        y: yRange ? { range: yRange } : {},
      },
      axes: [{ label: xLabel }, { label: yLabel }],
      legend: { show: true },
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash ? [6, 4] : undefined,
          fill: s.bars ? `${s.color}66` : undefined,
          paths: s.bars ? barPaths : undefined,
          points: { show: false },
        })),
      ],
    };
    const plot = new uPlot(opts, [x, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    const observer = new ResizeObserver(() => plot.setSize(size()));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [x, series, xLabel, yLabel, height, square, xRange, yRange]);
  return <div className="plot" ref={box} data-testid={testid} />;
}
