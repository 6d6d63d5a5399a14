//! `index.html`: a gallery of a run that opens in a browser without a server (relative links
//! to the overlays, which the page scales as thumbnails).

use std::fmt::Write;

use super::manifest::{Record, Status};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative URL for a relative path: bytes outside the unreserved set are %-encoded.
fn url(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
h1{font-size:1.3em}main{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px;align-items:start}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:.8em;overflow-wrap:anywhere}
.thumb{position:relative;width:100%}.thumb img{display:block;width:100%;height:100%}
.box{position:absolute;border:2px dashed #0f0;box-sizing:border-box;display:none}
#boxes:checked~main .box{display:block}
figcaption b{font-size:1.1em}.p{color:#555}.err{color:#b00}table{border-collapse:collapse;margin-top:1em}
td{border-top:1px solid #ddd;padding:2px 8px;vertical-align:top;font-size:.85em}";

/// The gallery of `records` (output paths relative to the page); `show_boxes` ticks the
/// "outline boxes" switch (for overlays without a drawn box).
pub fn gallery(title: &str, records: &[Record], show_boxes: bool) -> String {
    let ok = records.iter().filter(|r| r.status == Status::Ok).count();
    let failed = records.len() - ok;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>\n\
         <h1>{t}</h1><p>{n} images: {ok} explained, {failed} failed.</p>\n\
         <input type=\"checkbox\" id=\"boxes\"{checked}><label for=\"boxes\"> outline the boxes</label>\n<main>\n",
        t = escape(title),
        n = records.len(),
        checked = if show_boxes { " checked" } else { "" },
    );
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        let (w, h) = r.image_size.unwrap_or((1, 1));
        for t in &r.targets {
            let name = r.path.rsplit('/').next().unwrap_or(&r.path);
            html.push_str("<figure>");
            if let Some(overlay) = &t.overlay {
                let _ = write!(
                    html,
                    "<a href=\"{u}\"><div class=\"thumb\" style=\"aspect-ratio:{w}/{h}\"><img src=\"{u}\" loading=\"lazy\" alt=\"{a}\">",
                    u = escape(&url(overlay)),
                    a = escape(name),
                );
                if let Some(b) = &t.bbox {
                    let pct = |v: u32, total: u32| 100.0 * v as f64 / total.max(1) as f64;
                    let _ = write!(
                        html,
                        "<div class=\"box\" style=\"left:{:.2}%;top:{:.2}%;width:{:.2}%;height:{:.2}%\"></div>",
                        pct(b.x1, w),
                        pct(b.y1, h),
                        pct(b.x2 + 1 - b.x1, w),
                        pct(b.y2 + 1 - b.y1, h)
                    );
                }
                html.push_str("</div></a>");
            }
            let _ = write!(
                html,
                "<figcaption><b title=\"{p}\">{n}</b><br>",
                p = escape(&r.path),
                n = escape(name)
            );
            if let (Some(c), Some(l)) = (t.class, &t.label) {
                let _ = write!(
                    html,
                    "{c} {} <span class=\"p\">(score {:.2})</span><br>",
                    escape(l),
                    t.score
                );
            }
            if let Some(top) = &r.top1 {
                let _ = write!(
                    html,
                    "<span class=\"p\">top-1: {} {} {:.1}%</span><br>",
                    top.class,
                    escape(&top.label),
                    100.0 * top.probability
                );
            }
            match &t.bbox {
                Some(b) => {
                    let _ = write!(
                        html,
                        "<span class=\"p\">box {},{} &ndash; {},{}</span>",
                        b.x1, b.y1, b.x2, b.y2
                    );
                }
                None => html.push_str("<span class=\"p\">no box</span>"),
            }
            if let Some(j) = &r.json {
                let _ = write!(html, " &middot; <a href=\"{}\">json</a>", escape(&url(j)));
            }
            html.push_str("</figcaption></figure>\n");
        }
    }
    html.push_str("</main>\n");
    if failed > 0 {
        html.push_str("<h2>Failed</h2><table>\n");
        for r in records.iter().filter(|r| r.status != Status::Ok) {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td class=\"err\">{}</td></tr>",
                escape(&r.path),
                escape(r.error.as_deref().unwrap_or(""))
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_urls() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(
            url("sub dir/cat#1.gradcam.jpg"),
            "sub%20dir/cat%231.gradcam.jpg"
        );
    }
}
