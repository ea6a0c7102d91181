//! The one SVG writer behind every plot, with the one escape for its text and attribute values.
//!
//! Elements are written in painting order straight into a string; every
//! attribute value and every text goes through [`escape`], so a title or an
//! instance id can hold any character without breaking the document.

use std::fmt::{self, Display, Write as _};

const XMLNS: &str = "http://www.w3.org/2000/svg";

/// Escapes `&`, `<`, `>`, `"` and `'`: the result is safe as XML text and inside a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = Escaped(&mut out).write_str(s);
    out
}

/// Writes into the string with [`escape`]'s replacements, so `Display` values are escaped without a copy.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

/// A number with a fixed count of decimals (`Fixed(1.25, 1)` shows as `1.2`), for coordinates.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub f64, pub usize);

impl Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", self.1, self.0)
    }
}

/// An SVG document being written: a white canvas, then elements in painting order.
#[derive(Debug)]
pub struct Svg {
    out: String,
}

impl Svg {
    /// Starts a document; `root` adds the `<svg>` element's attributes (size, fonts) after `xmlns`.
    pub fn new(root: impl FnOnce(Element<'_>) -> Element<'_>) -> Self {
        let mut svg = Self { out: String::new() };
        root(svg.el("svg").attr("xmlns", XMLNS)).open();
        svg.el("rect")
            .attr("width", "100%")
            .attr("height", "100%")
            .attr("fill", "white")
            .end();
        svg
    }

    /// Starts an element `<name`; add attributes, then finish it with [`Element::end`],
    /// [`Element::text`] or [`Element::title`].
    pub fn el(&mut self, name: &'static str) -> Element<'_> {
        self.out.push('<');
        self.out.push_str(name);
        Element {
            out: &mut self.out,
            name,
        }
    }

    /// A filled square of side `size` at (`x`, `y`) with `label` written at (`tx`, `ty`): one legend entry.
    pub fn swatch(
        &mut self,
        (x, y): (impl Display, impl Display),
        size: u32,
        fill: &str,
        (tx, ty): (impl Display, impl Display),
        label: &str,
    ) {
        self.el("rect")
            .attr("x", x)
            .attr("y", y)
            .attr("width", size)
            .attr("height", size)
            .attr("fill", fill)
            .end();
        self.el("text").attr("x", tx).attr("y", ty).text(label);
    }

    /// Closes the document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// An element whose start tag is being written; it must be finished to keep the document well-formed.
#[derive(Debug)]
#[must_use = "an element is complete only once ended"]
pub struct Element<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Element<'_> {
    /// Adds ` name="value"`, the value escaped.
    pub fn attr(self, name: &str, value: impl Display) -> Self {
        let _ = write!(self.out, " {name}=\"");
        let _ = write!(Escaped(self.out), "{value}");
        self.out.push('"');
        self
    }

    /// Ends an empty element: `/>`.
    pub fn end(self) {
        self.out.push_str("/>\n");
    }

    /// Ends the element with `text` (escaped) as its content.
    pub fn text(self, text: impl Display) {
        self.out.push('>');
        let _ = write!(Escaped(self.out), "{text}");
        let _ = writeln!(self.out, "</{}>", self.name);
    }

    /// Ends the element with a `<title>` child: the tooltip a viewer shows on hover.
    pub fn title(self, title: impl Display) {
        self.out.push_str("><title>");
        let _ = write!(Escaped(self.out), "{title}");
        let _ = writeln!(self.out, "</title></{}>", self.name);
    }

    /// Ends the start tag only (the root, closed by [`Svg::finish`]).
    fn open(self) {
        self.out.push_str(">\n");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `svg` parses as XML, and returns its text contents in document order.
    pub(crate) fn parse_texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.is_element())
            .filter_map(|n| n.text())
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn escape_replaces_the_five_xml_specials() {
        assert_eq!(escape(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
        assert_eq!(escape("k = 8, 12 µs"), "k = 8, 12 µs");
        // Already-escaped text is escaped again: callers pass raw text.
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn elements_escape_text_and_attributes() {
        let mut svg = Svg::new(|r| r.attr("width", 10.0).attr("height", Fixed(2.0, 1)));
        svg.el("text")
            .attr("data-x", r#"say "<hi>""#)
            .text(r#"a "quoted" <title> & 'more'"#);
        svg.el("rect").attr("x", 1.5).title("i-<1>\"");
        let out = svg.finish();
        assert_eq!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"2.0\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text data-x=\"say &quot;&lt;hi&gt;&quot;\">a &quot;quoted&quot; &lt;title&gt; &amp; &#39;more&#39;</text>\n\
             <rect x=\"1.5\"><title>i-&lt;1&gt;&quot;</title></rect>\n\
             </svg>\n"
        );
        assert_eq!(
            parse_texts(&out),
            [r#"a "quoted" <title> & 'more'"#, "i-<1>\""]
        );
    }
}
