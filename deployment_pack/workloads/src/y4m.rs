//! YUV4MPEG2 (`.y4m`) framing for 4:2:0 video: a streaming reader and a writer.
//!
//! A stream is one header line, `YUV4MPEG2 W<width> H<height> [F<n>:<d>]
//! [I<p>] [A<n>:<d>] [C<colorspace>] [X<comment>]...`, then per frame a
//! `FRAME[ params]` line followed by the raw Y, U and V planes. Only the 4:2:0
//! colorspaces (`420jpeg`, `420paldv`, `420mpeg2`, `420`, or none) are
//! accepted; they differ only in chroma siting, not in layout. The format has
//! no frame count, so ProPack's generator records one as the comment
//! `XFRAMES=<n>`; when present the reader checks the stream has exactly that
//! many frames.

use std::io::{BufRead, Read};

use crate::WorkloadError;

const MAGIC: &str = "YUV4MPEG2";
/// Longest header or frame line accepted; guards against reading a whole
/// non-y4m object as one "line".
const MAX_LINE: u64 = 4096;
const MAX_SIDE: u32 = 16384;

/// The parsed stream header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Frame rate numerator and denominator, if given.
    pub fps: Option<(u32, u32)>,
    /// Colorspace tag (`420jpeg` if absent).
    pub colorspace: String,
    /// Frame count from the `XFRAMES=<n>` comment, if present.
    pub frames: Option<u64>,
}

impl Header {
    /// Width and height of each chroma plane.
    pub fn chroma_size(&self) -> (u32, u32) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// Bytes of one frame's three planes.
    pub fn frame_bytes(&self) -> usize {
        let (cw, ch) = self.chroma_size();
        self.width as usize * self.height as usize + 2 * cw as usize * ch as usize
    }

    /// The header line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = format!("{MAGIC} W{} H{}", self.width, self.height);
        if let Some((n, d)) = self.fps {
            s.push_str(&format!(" F{n}:{d}"));
        }
        s.push_str(&format!(" Ip A1:1 C{}", self.colorspace));
        if let Some(n) = self.frames {
            s.push_str(&format!(" XFRAMES={n}"));
        }
        s.push('\n');
        s
    }
}

/// One decoded frame: the three planes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Luma, `width × height`.
    pub y: Vec<u8>,
    /// Cb, `⌈w/2⌉ × ⌈h/2⌉`.
    pub u: Vec<u8>,
    /// Cr, `⌈w/2⌉ × ⌈h/2⌉`.
    pub v: Vec<u8>,
}

fn corrupt(message: impl Into<String>) -> WorkloadError {
    WorkloadError::input("video", message)
}

/// Reads one `\n`-terminated line of at most [`MAX_LINE`] bytes; `None` at clean EOF.
fn read_line<R: BufRead>(r: &mut R, what: &str) -> Result<Option<String>, WorkloadError> {
    let mut buf = Vec::new();
    r.by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .map_err(|e| WorkloadError::io(format!("video: reading the {what}"), e))?;
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.pop() != Some(b'\n') {
        return Err(corrupt(format!(
            "corrupt y4m {what}: no end of line within {MAX_LINE} bytes"
        )));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| corrupt(format!("corrupt y4m {what}: not ASCII")))
}

/// Parses a header line (without its newline).
pub fn parse_header(line: &str) -> Result<Header, WorkloadError> {
    let mut tokens = line.split(' ').filter(|t| !t.is_empty());
    if tokens.next() != Some(MAGIC) {
        let shown: String = line.chars().take(20).collect();
        return Err(corrupt(format!(
            "corrupt y4m header: expected it to start with {MAGIC:?}, got {shown:?}"
        )));
    }
    let (mut width, mut height, mut fps, mut colorspace, mut frames) =
        (None, None, None, None, None);
    for tok in tokens {
        let (tag, val) = tok.split_at(1);
        let bad = |what: &str| corrupt(format!("corrupt y4m header: bad {what} {tok:?}"));
        match tag {
            "W" => width = Some(val.parse::<u32>().map_err(|_| bad("width"))?),
            "H" => height = Some(val.parse::<u32>().map_err(|_| bad("height"))?),
            "F" => {
                let (n, d) = val.split_once(':').ok_or_else(|| bad("frame rate"))?;
                let n = n.parse::<u32>().map_err(|_| bad("frame rate"))?;
                let d = d.parse::<u32>().map_err(|_| bad("frame rate"))?;
                fps = Some((n, d));
            }
            "C" => colorspace = Some(val.to_owned()),
            "X" => {
                if let Some(n) = val.strip_prefix("FRAMES=") {
                    frames = Some(n.parse::<u64>().map_err(|_| bad("XFRAMES"))?);
                }
            }
            // Interlacing and aspect ratio do not change the layout.
            "I" | "A" => {}
            _ => return Err(bad("parameter")),
        }
    }
    let width = width.ok_or_else(|| corrupt("corrupt y4m header: no width (W)"))?;
    let height = height.ok_or_else(|| corrupt("corrupt y4m header: no height (H)"))?;
    if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
        return Err(corrupt(format!(
            "y4m frame size {width}×{height} out of range (1..={MAX_SIDE})"
        )));
    }
    let colorspace = colorspace.unwrap_or_else(|| "420jpeg".to_owned());
    if !matches!(
        colorspace.as_str(),
        "420jpeg" | "420paldv" | "420mpeg2" | "420"
    ) {
        return Err(corrupt(format!(
            "unsupported y4m colorspace C{colorspace}: only 4:2:0 is supported"
        )));
    }
    Ok(Header {
        width,
        height,
        fps,
        colorspace,
        frames,
    })
}

/// A streaming reader of a 4:2:0 y4m stream: one frame in memory at a time.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    header: Header,
    read: u64,
}

impl<R: BufRead> Reader<R> {
    /// Reads and validates the stream header.
    pub fn new(mut inner: R) -> Result<Self, WorkloadError> {
        let line = read_line(&mut inner, "header")?
            .ok_or_else(|| corrupt("the input object is empty (expected a y4m stream)"))?;
        let header = parse_header(&line)?;
        Ok(Self {
            inner,
            header,
            read: 0,
        })
    }

    /// The stream header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Frames read so far.
    pub fn frames_read(&self) -> u64 {
        self.read
    }

    /// Reads the next frame into `frame`; `false` at the end of the stream.
    pub fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, WorkloadError> {
        let index = self.read;
        let Some(line) = read_line(&mut self.inner, "frame header")? else {
            if let Some(n) = self.header.frames
                && n != self.read
            {
                return Err(corrupt(format!(
                    "truncated y4m stream: header says XFRAMES={n} but it has {} frames",
                    self.read
                )));
            }
            return Ok(false);
        };
        if line != "FRAME" && !line.starts_with("FRAME ") {
            let shown: String = line.chars().take(20).collect();
            return Err(corrupt(format!(
                "corrupt y4m stream: frame {index} starts with {shown:?}, not \"FRAME\""
            )));
        }
        if let Some(n) = self.header.frames
            && index >= n
        {
            return Err(corrupt(format!(
                "y4m stream has more frames than its header's XFRAMES={n}"
            )));
        }
        let (w, h) = (self.header.width as usize, self.header.height as usize);
        let (cw, ch) = self.header.chroma_size();
        let c = cw as usize * ch as usize;
        for (plane, len, name) in [
            (&mut frame.y, w * h, "Y"),
            (&mut frame.u, c, "U"),
            (&mut frame.v, c, "V"),
        ] {
            plane.resize(len, 0);
            self.inner.read_exact(plane).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    corrupt(format!(
                        "truncated y4m stream: frame {index} ends inside its {name} plane"
                    ))
                } else {
                    WorkloadError::io(format!("video: reading frame {index}"), e)
                }
            })?;
        }
        self.read += 1;
        Ok(true)
    }
}

/// Appends one frame (header line and planes) to `out`.
pub fn write_frame(out: &mut Vec<u8>, frame: &Frame) {
    out.extend_from_slice(b"FRAME\n");
    out.extend_from_slice(&frame.y);
    out.extend_from_slice(&frame.u);
    out.extend_from_slice(&frame.v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(w: u32, h: u32, frames: Option<u64>) -> Header {
        Header {
            width: w,
            height: h,
            fps: Some((25, 1)),
            colorspace: "420jpeg".into(),
            frames,
        }
    }

    fn stream(h: &Header, n: usize) -> Vec<u8> {
        let mut out = h.to_line().into_bytes();
        let (cw, ch) = h.chroma_size();
        for i in 0..n {
            let frame = Frame {
                y: vec![i as u8; (h.width * h.height) as usize],
                u: vec![1; (cw * ch) as usize],
                v: vec![2; (cw * ch) as usize],
            };
            write_frame(&mut out, &frame);
        }
        out
    }

    #[test]
    fn round_trip_with_odd_sizes() {
        let h = header(5, 3, Some(2));
        assert_eq!(h.frame_bytes(), 15 + 2 * 6);
        let bytes = stream(&h, 2);
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header(), &h);
        let mut f = Frame::default();
        assert!(r.next_frame(&mut f).unwrap());
        assert!(r.next_frame(&mut f).unwrap());
        assert_eq!(f.y, vec![1; 15]);
        assert!(!r.next_frame(&mut f).unwrap());
        assert_eq!(r.frames_read(), 2);
    }

    #[test]
    fn corrupt_streams_fail_clearly() {
        let msg = |bytes: &[u8]| -> String {
            let mut f = Frame::default();
            match Reader::new(bytes) {
                Err(e) => e.to_string(),
                Ok(mut r) => loop {
                    match r.next_frame(&mut f) {
                        Err(e) => break e.to_string(),
                        Ok(true) => {}
                        Ok(false) => break "ok".into(),
                    }
                },
            }
        };
        assert!(msg(b"").contains("input object is empty"));
        assert!(msg(b"GIF89a\n").contains("start with \"YUV4MPEG2\""));
        assert!(msg(b"YUV4MPEG2 W10\n").contains("no height"));
        assert!(msg(b"YUV4MPEG2 W10 Hx\n").contains("bad height"));
        assert!(msg(b"YUV4MPEG2 W0 H10\n").contains("out of range"));
        assert!(msg(b"YUV4MPEG2 W4 H4 C444\n").contains("only 4:2:0"));
        assert!(msg(&[b'Y'; 5000]).contains("no end of line"));
        let full = stream(&header(4, 4, Some(2)), 2);
        assert_eq!(msg(&full), "ok");
        assert!(msg(&full[..full.len() - 3]).contains("frame 1 ends inside its V plane"));
        let short = stream(&header(4, 4, Some(3)), 2);
        assert!(msg(&short).contains("XFRAMES=3 but it has 2"));
        let long = stream(&header(4, 4, Some(1)), 2);
        assert!(msg(&long).contains("more frames"));
        let mut garbage = stream(&header(4, 4, None), 1);
        garbage.extend_from_slice(b"FRAMX\n");
        assert!(msg(&garbage).contains("not \"FRAME\""));
    }
}
