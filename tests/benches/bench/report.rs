//! Statistics and reporting: a row of samples (median, min, max), the report's tables and
//! lines (stdout and bench-results.md), and the SVG chart (docs/src/bench.svg).

use std::time::Duration;

#[derive(Clone)]
pub(crate) struct Row {
    pub(crate) name: String,
    unit: &'static str,
    pub(crate) samples: Vec<f64>,
}

impl Row {
    pub(crate) fn new(name: impl Into<String>, unit: &'static str) -> Row {
        Row {
            name: name.into(),
            unit,
            samples: Vec::new(),
        }
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v
    }
    pub(crate) fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// A bar chart: its title, its (label, value) bars and their unit.
type Chart = (String, Vec<(String, f64)>, &'static str);

pub(crate) struct Report {
    pub(crate) text: String,
    pub(crate) charts: Vec<Chart>,
}

impl Report {
    pub(crate) fn table(&mut self, title: &str, rows: &[Row], base: Option<&str>) {
        let base_median = base
            .and_then(|b| rows.iter().find(|r| r.name == b))
            .map(|r| r.median());
        let mut t = format!("\n### {title}\n\n| what | unit | median | min | max | runs |");
        if base.is_some() {
            t.push_str(" vs execdriver |");
        }
        t.push('\n');
        t.push_str("|---|---|---:|---:|---:|---:|");
        if base.is_some() {
            t.push_str("---:|");
        }
        t.push('\n');
        for r in rows {
            t.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} |",
                r.name,
                r.unit,
                r.median(),
                r.min(),
                r.max(),
                r.samples.len()
            ));
            if let Some(b) = base_median {
                t.push_str(&format!(" {:.2}x |", r.median() / b));
            }
            t.push('\n');
        }
        print!("{t}");
        self.text.push_str(&t);
    }

    pub(crate) fn line(&mut self, s: &str) {
        println!("{s}");
        self.text.push_str(s);
        self.text.push('\n');
    }

    pub(crate) fn target(&mut self, what: &str, value: f64, limit: f64, at_most: bool) {
        let met = if at_most {
            value <= limit
        } else {
            value >= limit
        };
        let rel = if at_most { "<=" } else { ">=" };
        self.line(&format!(
            "- {what}: {value:.2} (target {rel} {limit:.2}) — {}",
            if met { "met" } else { "NOT met" }
        ));
    }
}

/// A horizontal bar chart per section, as one SVG.
pub(crate) fn svg(charts: &[Chart]) -> String {
    let width = 900.0;
    let left = 330.0;
    let bar_h = 22.0;
    let mut y = 20.0;
    let mut body = String::new();
    for (title, bars, unit) in charts {
        body.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
            y + 14.0,
            escape(title)
        ));
        y += 26.0;
        let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
        for (label, value) in bars {
            let w = (width - left - 110.0) * value / max;
            let color = if label.starts_with("execdriver") {
                "#2b7a3d"
            } else {
                "#7a8ca3"
            };
            body.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"end\">{}</text>\n",
                left - 8.0,
                y + 15.0,
                escape(label)
            ));
            body.push_str(&format!(
                "<rect x=\"{left:.0}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{color}\"/>\n",
                y + 2.0,
                bar_h - 4.0
            ));
            body.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{value:.1} {unit}</text>\n",
                left + w + 6.0,
                y + 15.0
            ));
            y += bar_h;
        }
        y += 14.0;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{:.0}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        y + 10.0
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
