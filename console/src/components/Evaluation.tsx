// What the evaluation component recorded for a binary model: headline figures, ROC, KS and
// lift curves, the score distribution by label, and the KS (score-bin) table.
import { useMemo } from "react";
import { useI18n } from "../i18n";
import { Plot, type Series } from "./Plot";
import { TableBox, num } from "./common";

type CurvePoint = { fpr: number; tpr: number; threshold: number | null };
type ScoreBin = { bin: number; min_score: number; max_score: number; count: number; bad: number; good: number; bad_rate: number; [k: string]: number };
export type MetricsArtifact = {
  artifact: "metrics";
  kind: string;
  headline: Record<string, number>;
  details: {
    report?: Record<string, unknown>;
    threshold?: number;
    roc?: CurvePoint[];
    roc_exact?: boolean;
    ks_curve?: CurvePoint[];
    lift_curve?: { fraction: number; rows: number; lift: number; gain: number }[];
    score_distribution?: { edges: number[]; positive: number[]; negative: number[] };
    score_bins?: ScoreBin[];
  };
};

const BLUE = "#1565c0";
const RED = "#c62828";
const GREY = "#9e9e9e";
const UNIT: [number, number] = [0, 1];

export function EvaluationView({ m }: { m: MetricsArtifact }) {
  const { t } = useI18n();
  const d = m.details;
  const roc = useMemo(() => {
    const pts = d.roc ?? [];
    return {
      x: pts.map((p) => p.fpr),
      series: [
        { label: t("eval.roc"), values: pts.map((p) => p.tpr), color: BLUE },
        { label: t("eval.chance"), values: pts.map((p) => p.fpr), color: GREY, dash: true },
      ] as Series[],
    };
  }, [d.roc, t]);
  // KS: TPR and FPR against the share of rows predicted positive, read as the threshold falls.
  const ks = useMemo(() => {
    const pts = d.ks_curve ?? [];
    // Positives and negatives from the KS table give each point's share of rows above the
    // threshold; without them, the points are spread evenly.
    const pos = (d.score_bins ?? []).reduce((a, b) => a + b.bad, 0);
    const neg = (d.score_bins ?? []).reduce((a, b) => a + b.good, 0);
    const share = (p: CurvePoint, i: number) =>
      pos + neg > 0 ? (p.tpr * pos + p.fpr * neg) / (pos + neg) : i / Math.max(1, pts.length - 1);
    return {
      x: pts.map(share),
      series: [
        { label: "TPR", values: pts.map((p) => p.tpr), color: BLUE },
        { label: "FPR", values: pts.map((p) => p.fpr), color: RED },
        { label: "KS", values: pts.map((p) => p.tpr - p.fpr), color: "#2e7d32", dash: true },
      ] as Series[],
    };
  }, [d.ks_curve, d.score_bins]);
  const lift = useMemo(() => {
    const pts = d.lift_curve ?? [];
    return {
      x: pts.map((p) => p.fraction),
      series: [
        { label: t("eval.lift"), values: pts.map((p) => p.lift), color: BLUE },
        { label: t("eval.gain"), values: pts.map((p) => p.gain), color: RED },
        { label: t("eval.baseline"), values: pts.map(() => 1), color: GREY, dash: true },
      ] as Series[],
    };
  }, [d.lift_curve, t]);
  const dist = useMemo(() => {
    const s = d.score_distribution;
    if (!s || s.edges.length < 2) return null;
    const mid = s.positive.map((_, i) => (s.edges[i] + s.edges[i + 1]) / 2);
    return {
      // All the bars in view (they stand on their bins' middles); one score for every row
      // leaves the range to uPlot.
      range: s.edges[s.edges.length - 1] > s.edges[0] ? ([s.edges[0], s.edges[s.edges.length - 1]] as [number, number]) : undefined,
      x: mid,
      series: [
        { label: t("eval.positive"), values: s.positive, color: RED, bars: true },
        { label: t("eval.negative"), values: s.negative, color: BLUE, bars: true },
      ] as Series[],
    };
  }, [d.score_distribution, t]);
  return (
    <>
      <dl className="headline" data-testid="eval-headline">
        {Object.entries(m.headline).map(([k, v]) => (
          <div key={k}>
            <dt>{k.toUpperCase()}</dt>
            <dd data-testid={`headline-${k}`}>{num(v)}</dd>
          </div>
        ))}
      </dl>
      {m.kind === "binary" && (
        <div className="plots">
          {roc.x.length > 0 && (
            <div className="plot-cell">
              <h3>
                ROC · AUC {num(m.headline.auc)}
                {d.roc_exact === false && <span className="muted small"> ({t("eval.thinned")})</span>}
              </h3>
              <Plot x={roc.x} series={roc.series} xLabel="FPR" yLabel="TPR" testid="roc-plot" square xRange={UNIT} yRange={UNIT} />
            </div>
          )}
          {ks.x.length > 0 && (
            <div className="plot-cell">
              <h3>KS {num(m.headline.ks)}</h3>
              <Plot x={ks.x} series={ks.series} xLabel={t("eval.share_positive")} yLabel={t("eval.rate")} testid="ks-plot" xRange={UNIT} yRange={UNIT} />
            </div>
          )}
          {lift.x.length > 0 && (
            <div className="plot-cell">
              <h3>{t("eval.lift_title")}</h3>
              <Plot x={lift.x} series={lift.series} xLabel={t("eval.share_rows")} yLabel={t("eval.lift")} testid="lift-plot" />
            </div>
          )}
          {dist && (
            <div className="plot-cell">
              <h3>{t("eval.distribution")}</h3>
              <Plot x={dist.x} series={dist.series} xLabel={t("eval.score")} yLabel={t("eval.rows")} testid="score-dist-plot" xRange={dist.range} />
            </div>
          )}
        </div>
      )}
      {d.score_bins && d.score_bins.length > 0 && <KsTable bins={d.score_bins} />}
    </>
  );
}

function KsTable({ bins }: { bins: ScoreBin[] }) {
  const { t } = useI18n();
  // Columns the table has beyond the basic ones (cumulative rates, KS per bin) are shown as
  // they come, so the table follows the metrics code.
  const extra = Object.keys(bins[0]).filter((k) => !["bin", "min_score", "max_score", "count", "bad", "good", "bad_rate"].includes(k));
  return (
    <>
      <h3>{t("eval.ks_table")}</h3>
      <TableBox testid="ks-table">
        <thead>
          <tr>
            <th>{t("eval.bin")}</th>
            <th>{t("eval.score_range")}</th>
            <th>{t("eval.count")}</th>
            <th>{t("eval.bad")}</th>
            <th>{t("eval.good")}</th>
            <th>{t("eval.bad_rate")}</th>
            {extra.map((k) => (
              <th key={k}>{k}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {bins.map((b) => (
            <tr key={b.bin}>
              <td>{b.bin + 1}</td>
              <td>
                {num(b.min_score)} – {num(b.max_score)}
              </td>
              <td>{b.count}</td>
              <td>{b.bad}</td>
              <td>{b.good}</td>
              <td>{num(b.bad_rate)}</td>
              {extra.map((k) => (
                <td key={k}>{num(b[k])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </TableBox>
    </>
  );
}
