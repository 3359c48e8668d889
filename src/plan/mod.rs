//! The coding plan (format-spec 8.6 and 7.6): which codec, preset and
//! piece sizes each segment gets and which trials decide between them, and
//! the sizes that bound work in flight. [`crate::archive::create`] runs the plan;
//! [`crate::archive::extract`] uses only its sizes. What is normative (what a
//! decoder accepts) lives in [`crate::format`] and the codecs; everything
//! here is the encoder's choice.

use std::sync::Arc;

use crate::codecs::{self, Frame, TextCoder};
use crate::format::CodecId;

/// Default segment size: files are read and coded in pieces of this many
/// bytes (the header's `max_chunk`). Large, because a segment that zstd
/// codes is coded on its own: 32 MiB keeps zstd -19 within a few tenths of a
/// percent of whole-file zstd -19 on the silesia files.
pub const DEFAULT_CHUNK_SIZE: u32 = 32 << 20;

/// Most input bytes in flight (read, being coded or waiting to be written),
/// unless two segments are more.
pub const MAX_IN_FLIGHT: usize = 256 << 20;

/// Default length of a language-model chunk (format-spec 7.6).
pub const LM_CHUNK_SIZE: usize = crate::codecs::lm::TRAINED_CONTEXT;

/// How file data is coded (the CLI's `--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// zstd at the chosen level for everything.
    Zstd,
    /// Context mixing with the fast preset, no language model.
    Fast,
    /// Context mixing with the normal preset, no language model.
    Cm,
    /// Context mixing with the language model on text (pieces of at most
    /// 4 MiB, format-spec 8.6), the normal preset elsewhere.
    Default,
    /// As `Default` with chunks of up to 4 MiB: smaller, less parallel.
    Max,
    /// The language model alone on text, in 16 KiB chunks (codec 2,
    /// format-spec 7.6); zstd elsewhere.
    Lm,
}

impl Method {
    /// Whether the method uses a language model.
    pub fn uses_lm(self) -> bool {
        matches!(self, Method::Default | Method::Max | Method::Lm)
    }

    /// The context-mixing preset for what is coded without the model:
    /// text-fast (preset 9) for `cm`, where speed is the point; text
    /// (preset 3) for the methods with the model, whose time goes to the
    /// model's chunks and whose no-model chunks are repetitive text, where
    /// preset 3's 16 contexts pay: silesia/nci took 1,173,908 bytes with
    /// preset 3 and 1,228,912 with preset 9, silesia/xml 324,164 and
    /// 324,442.
    pub fn preset(self) -> crate::codecs::cm::Preset {
        match self {
            Method::Fast => crate::codecs::cm::FAST,
            Method::Cm => crate::codecs::cm::TEXT_FAST,
            _ => crate::codecs::cm::TEXT,
        }
    }

    /// Whether the method may code text with a context-mixing preset that
    /// version 1 lacks (preset 9, text-fast): then the archive is version 2.
    pub fn needs_version_2(self) -> bool {
        self.preset().id > crate::format::MAX_V1_CM_PRESET
            && !matches!(self, Method::Zstd | Method::Lm)
    }
}

/// `a` if its payload is smaller than `b`'s, else `b` (ties go to `b`, the
/// simpler codec at every call site).
fn smaller(a: Frame, b: Frame) -> Frame {
    if a.payload.len() < b.payload.len() {
        a
    } else {
        b
    }
}

/// Bytes of input (when writing) or output (when reading) in flight at
/// most: two segments per thread plus two (each at most `max_chunk`
/// bytes), but no more than [`MAX_IN_FLIGHT`] unless a single pair of
/// segments is more.
pub fn in_flight_bytes(threads: usize, max_chunk: usize) -> usize {
    ((2 * threads + 2) * max_chunk)
        .min(MAX_IN_FLIGHT)
        .max(2 * max_chunk)
}

/// With a model, the writer groups segments so that one job gives it about
/// as many chunks as it codes side by side (`batch`): this many bytes.
pub fn model_group_bytes(batch: usize, method: Method) -> usize {
    match method {
        Method::Lm => batch * LM_CHUNK_SIZE,
        _ => batch.min(crate::codecs::cmlm::CM_SLOTS) * crate::codecs::cm::MAX_CM_LM_CHUNK,
    }
}

/// The reader's grouping of chunks that use the model: enough bytes for a
/// full batch of the largest chunks any method writes.
pub fn decode_group_bytes(batch: usize) -> usize {
    (batch * LM_CHUNK_SIZE)
        .max(batch.min(crate::codecs::cmlm::CM_SLOTS) * crate::codecs::cm::MAX_CM_LM_CHUNK)
}

/// Solid blocks (format-spec 4a) as the writer makes them: files smaller
/// than half a block are read whole and coded with the other files of
/// their class ([`file_class`]) as one segment of at most `block_size`
/// bytes, so that each learns from those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solid {
    /// Largest block, in bytes; 0: no blocks.
    pub block_size: usize,
    /// Order the files of blocks by [`solid_order`] rather than by
    /// [`solid_sequence`] (off by default: see [`Solid::DEFAULT`]).
    pub sort: bool,
}

/// Default block size. A block is the unit of parallel work: a block of
/// 256 KiB to 4 MiB is one chunk of two streams with the default method
/// (two threads), so a tree of 8 MB of small text files gives 16 threads
/// work. Larger blocks learn more, smaller ones lose: with the default
/// method, /usr/include/x86_64-linux-gnu (415 files, 1.67 MB) took
/// 187,312 bytes in 512 KiB blocks, 175,808 in 1 MiB blocks and 168,600
/// in 4 MiB blocks (its tar as one file: 176,574); candle-core 0.9.2 (105
/// files, 1.62 MB) 145,325, 141,319 and 137,103 (tar: 149,605).
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

impl Solid {
    /// Every file on its own.
    pub const OFF: Solid = Solid {
        block_size: 0,
        sort: false,
    };
    /// What `lza create` does unless told otherwise: 1 MiB blocks in the
    /// order of [`solid_sequence`]. 7-Zip's order by extension made blocks
    /// larger on every tree measured (1 MiB blocks, default method):
    /// /usr/include/x86_64-linux-gnu 175,808 bytes against 172,163 in walk
    /// order, candle-core 0.9.2 141,319 against 140,361, rayon 1.12.0
    /// 89,455 against 88,782. The walk lists a directory's files together
    /// and by name, which already puts related files side by side.
    pub const DEFAULT: Solid = Solid {
        block_size: DEFAULT_BLOCK_SIZE,
        sort: false,
    };

    /// Whether blocks are made at all.
    pub fn is_on(&self) -> bool {
        self.block_size > 0
    }

    /// Whether a regular file of `size` bytes goes into a block.
    pub fn takes(&self, size: u64) -> bool {
        self.is_on() && size < (self.block_size / 2).max(1) as u64
    }
}

/// The classes of files that share blocks: text for the model, text it is
/// not offered (repetitive: logs, tables, generated code), and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileClass {
    /// Text (format-spec 7.6's test) that zstd does not code well.
    Text = 0,
    /// Text that zstd -19 codes below 0.9 bits per byte (the plan's
    /// `LM_WORTH_TRYING_BPB`).
    RepetitiveText = 1,
    /// Anything else.
    Binary = 2,
}

/// The class of a whole small file. Files below 4 KiB of text are `Text`:
/// zstd's frame overhead says nothing about them.
pub fn file_class(data: &[u8]) -> FileClass {
    if !codecs::looks_like_text(data) {
        return FileClass::Binary;
    }
    if data.len() < 4096 {
        return FileClass::Text;
    }
    let f = codecs::encode_zstd(data, 3);
    let bpb = 8.0 * f.payload.len() as f64 / data.len() as f64;
    if bpb < LM_WORTH_TRYING_BPB {
        FileClass::RepetitiveText
    } else {
        FileClass::Text
    }
}

/// A path's last part.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The order in which `lza create` puts small files into solid blocks,
/// as indexes into `files` (path and size, in walk order): walk order,
/// except that a file whose name (the path's last part) an earlier file
/// has, at a size within 25% of that file's, follows it, so that the
/// versions of a file sit side by side. The order depends on the paths
/// and sizes alone.
///
/// Trees hold the same file more than once where they hold several
/// versions of a project (a package cache, vendored sources, backups); in
/// walk order the versions lie a whole project apart, further than a
/// block. On the 10,091 files under 40 KiB of a cargo registry's sources
/// (236 crates, 36 of them in two or three versions), default method:
/// 4,698,112 bytes in walk order, 4,384,703 in this order (-6.7%; ordering
/// every file by name, then path, gave 4,404,687), `tar | xz -9e`
/// 5,019,584. On trees of one project it changes little: clap 4.6.9
/// 33,520 -> 33,518, rayon 1.12.0 88,782 -> 88,782, futures-util 0.3.34
/// 75,362 -> 75,620, candle-core 0.9.2 140,361 -> 140,354,
/// /usr/include/x86_64-linux-gnu 172,163 -> 172,146 (by name, then path,
/// each was larger, by up to 1.9%).
pub fn solid_sequence(files: &[(&str, u64)]) -> Vec<usize> {
    // runs of namesakes of similar size, in order of their first file
    let mut runs: Vec<Vec<usize>> = Vec::new();
    // per name, the run it last joined and the size of its last file
    let mut last: std::collections::HashMap<&str, (usize, u64)> = Default::default();
    for (k, &(path, size)) in files.iter().enumerate() {
        match last.get_mut(file_name(path)) {
            // max / min <= 5/4, in integers (sizes are below a block)
            Some((run, prev)) if size.max(*prev) * 4 <= size.min(*prev) * 5 => {
                runs[*run].push(k);
                *prev = size;
            }
            _ => {
                runs.push(vec![k]);
                last.insert(file_name(path), (runs.len() - 1, size));
            }
        }
    }
    runs.concat()
}

/// 7-Zip's solid order: by extension, then file name, then path, so that
/// files of one kind sit side by side in a block.
pub fn solid_order(path: &str) -> (String, String, String) {
    let name = file_name(path);
    let ext = match name.rfind('.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    };
    (ext.to_owned(), name.to_owned(), path.to_owned())
}

/// A piece of a file (or a solid block's files, one after another) to
/// code.
pub(crate) struct Segment {
    /// Its bytes.
    pub(crate) data: Vec<u8>,
}

/// Code `raw` by context mixing without the language model (format-spec
/// 8.6): `preset`, or preset 7 instead of 3 or 9 for what is not text; after the
/// x86 filter where it looks like x86 code; otherwise also as a 16-bit
/// image where it looks like one, keeping the smaller.
pub(crate) fn encode_cm(raw: &[u8], preset: crate::codecs::cm::Preset) -> Frame {
    // Presets 3 and 9 become preset 7 (sparse contexts) for what is not text.
    let preset = if preset != crate::codecs::cm::FAST && !codecs::looks_like_text(raw) {
        crate::codecs::cm::BINARY
    } else {
        preset
    };
    let payload = if crate::codecs::cm::looks_like_x86(raw) {
        crate::codecs::cm::encode_x86(raw, preset)
    } else {
        // What looks like a 16-bit image is coded both ways, side by side;
        // the smaller payload is kept.
        match crate::codecs::cm::guess_image(raw) {
            Some(image) if preset != crate::codecs::cm::FAST => {
                // (the plain coding counts these bytes for progress, unless
                // the caller counts none)
                let counted = crate::runtime::progress::counted();
                let (plain, img) = rayon::join(
                    || {
                        crate::runtime::progress::counted_as(counted, || {
                            crate::codecs::cm::encode(raw, preset)
                        })
                    },
                    || {
                        crate::runtime::progress::uncounted(|| {
                            crate::codecs::cm::encode_image(raw, image)
                        })
                    },
                );
                if img.len() < plain.len() { img } else { plain }
            }
            _ => crate::codecs::cm::encode(raw, preset),
        }
    };
    Frame::new(CodecId::ContextMixing, raw, payload)
}

/// Below this many bits per byte from zstd -19, a text segment is not
/// offered to the language model: it is repetitive enough (logs, XML,
/// tables) that the online models, which learn the whole segment, win, and
/// the model would only cost time. Measured on `../shared/bench`: the model
/// never won a chunk of silesia/xml (zstd 0.68 bpb) or silesia/nci (0.39),
/// and wins on prose near 2 bpb.
const LM_WORTH_TRYING_BPB: f64 = 0.9;

/// At or below this many bits per byte from zstd -1, a segment is runs or
/// zeros: its zstd -1 frame is kept as it is, decided in milliseconds. 32 MiB
/// of zeros is 1,152 bytes with zstd -1 (0.0003 bits per byte) and took 132 s
/// with the context-mixing trial, which saved a few hundred bytes; the most
/// repetitive 32 MiB segment of the benchmark set (snappy html_x_4) is 0.30
/// with zstd -1, fifteen times above this line.
const DEGENERATE_BPB: f64 = 0.02;

/// The zstd -1 frame of a segment that zstd codes to almost nothing (see
/// [`DEGENERATE_BPB`]), or `None`.
fn degenerate(data: &[u8]) -> Option<Frame> {
    let f = codecs::encode_zstd(data, 1);
    is_degenerate(&f).then_some(f)
}

/// Bits per byte of a frame's payload.
fn bpb(f: &Frame) -> f64 {
    8.0 * f.payload.len() as f64 / (f.header.raw_len as f64).max(1.0)
}

/// Whether a zstd -1 frame says its segment is runs or zeros.
fn is_degenerate(f: &Frame) -> bool {
    f.header.codec == CodecId::Zstd && bpb(f) <= DEGENERATE_BPB
}

/// A segment that zstd shrinks by less than this fraction is not worth
/// context mixing (compressed or random data): zstd's frame is kept.
const CM_MIN_GAIN: f64 = 0.02;

/// [`CM_MIN_GAIN`] in bits per byte.
const INCOMPRESSIBLE_BPB: f64 = 8.0 * (1.0 - CM_MIN_GAIN);

/// The piece length that cuts a segment's text into context-mixing chunks
/// that use the language model (format-spec 8.6): as few pieces of at most
/// `cm::MAX_CM_LM_CHUNK` bytes as can be; with the default method, an even
/// number of them above that size, so that two threads share the file.
/// The cut depends only on the segment's length.
///
/// Smaller pieces would give more threads a chain each, at a cost in
/// ratio: 12,965,219 bytes of English text (calgary/book1 and book2,
/// canterbury's alice29.txt, plrabn12.txt and lcet10.txt, large/bible.txt
/// and world192.txt, the first 4 MB of silesia/dickens), one file each,
/// gave 2,292,828 bytes in pieces of at most 4 MiB, +0.96% at 2 MiB,
/// +1.74% at 1 MiB and +2.81% at 512 KiB.
pub fn lm_pieces(len: usize, method: Method) -> usize {
    match method {
        Method::Default if !lm_preset(len, method).two_streams && len >= 64 << 10 => {
            let n = len.div_ceil(crate::codecs::cm::MAX_CM_LM_CHUNK);
            len.div_ceil(n + n % 2)
        }
        _ => split_len(len, crate::codecs::cm::MAX_CM_LM_CHUNK, usize::MAX),
    }
}

/// Segments of at least this many bytes, in one piece, are coded as two
/// streams by the default method, so that two threads share even a single
/// file: on calgary/book1 (768,771 bytes) one chunk of one stream gave
/// 172,525 bytes, two pieces 174,888, one chunk of two streams 172,663.
/// A chunk of two streams has one coder, which the encoder overlaps with
/// the model only from 16 of its 16 KiB stretches on: below, two pieces
/// are coded side by side (snappy html, 102 KB, two streams: 9,431 bytes
/// at 138 KB/s compressing; two pieces: the preset-3 chunk was smaller).
const TWO_STREAMS_FROM: usize = 256 << 10;

/// The context-mixing preset of the pieces of a segment of `len` bytes that
/// use the language model (format-spec 8.6). Above 4 MiB the default
/// method keeps one stream in an even number of pieces: two streams share
/// their statistics, which costs where the halves differ (silesia/dickens
/// is novels one after another: its first 3.4 MB as two streams, 671,180
/// bytes; one stream, 665,343; in two pieces, 671,895).
pub fn lm_preset(len: usize, method: Method) -> crate::codecs::cm::Preset {
    if method == Method::Default
        && (TWO_STREAMS_FROM..=crate::codecs::cm::MAX_CM_LM_CHUNK).contains(&len)
    {
        crate::codecs::cm::WITH_LM_TWO_STREAMS
    } else {
        crate::codecs::cm::WITH_LM_CLASSES
    }
}

/// Largest chunk of the fast method (format-spec 8.6).
const FAST_PIECE: usize = 8 << 20;

/// The piece length that cuts `len` bytes into pieces of at most `max`
/// bytes, and into at least two from `two_from` bytes on.
fn split_len(len: usize, max: usize, two_from: usize) -> usize {
    let n = len.div_ceil(max).max(if len >= two_from { 2 } else { 1 });
    len.div_ceil(n.max(1)).max(1)
}

/// Largest chunk of a segment coded by context mixing without the model,
/// with the default and `cm` methods (format-spec 8.6): a 32 MiB segment
/// in one chunk is one chain of about a minute to decode, longer than all
/// the rest of the benchmark tree takes on 16 threads. In 8 MiB pieces
/// (default method, one run each) silesia/nci took 1,201,025 bytes
/// against 1,173,996 in one chunk (+2.3%), osdb 2,248,164 against
/// 2,211,418 (+1.7%), mr +0.2%, x-ray +0.15%, xml and ooffice (under 8
/// MiB) the same: +73 KB (+0.4%) on the whole tree. In 4 MiB pieces the
/// same files took +165 KB (nci +4.2%, osdb +2.9%, ooffice +1.9%).
/// `max` keeps whole segments.
fn cm_piece(method: Method) -> usize {
    match method {
        Method::Default | Method::Cm => 8 << 20,
        _ => usize::MAX,
    }
}

/// `data` coded by context mixing without the model ([`encode_cm`]), in as
/// few pieces of at most [`cm_piece`] bytes as can be, side by side.
fn encode_cm_pieces(data: &[u8], method: Method) -> Vec<Frame> {
    encode_cm_in_pieces(data, method.preset(), cm_piece(method))
}

/// [`encode_cm_pieces`] with pieces of at most `max` bytes.
fn encode_cm_in_pieces(data: &[u8], preset: crate::codecs::cm::Preset, max: usize) -> Vec<Frame> {
    use rayon::prelude::*;
    let n = split_len(data.len(), max, usize::MAX);
    data.par_chunks(n)
        .map(|piece| encode_cm(piece, preset))
        .collect()
}

/// `pieces` if their frames are smaller in all than `whole`, else `whole`
/// alone (ties go to `whole`; one piece is compared as [`smaller`] does).
fn pieces_or_whole(mut pieces: Vec<Frame>, whole: Frame) -> Vec<Frame> {
    if pieces.len() == 1 {
        return vec![smaller(pieces.pop().expect("one piece"), whole)];
    }
    let total: usize = pieces.iter().map(Frame::encoded_len).sum();
    if total < whole.encoded_len() {
        pieces
    } else {
        vec![whole]
    }
}

/// Method `Lm` (format-spec 7.6): for a text segment, language-model chunks
/// where the model wins (each 16 KiB piece keeps the smaller of the model's
/// and zstd's code), unless one zstd frame for the whole segment is smaller;
/// zstd (or stored) otherwise.
fn code_segments_lm(
    segments: Vec<Segment>,
    zstd_level: i32,
    lm: Option<&dyn TextCoder>,
) -> Vec<Vec<Frame>> {
    // Next to the model's cost, zstd's best level is cheap: a text segment
    // is never larger than `zstd -19` would make it.
    let whole: Vec<(bool, Frame)> = segments
        .iter()
        .map(|s| {
            if let Some(f) = degenerate(&s.data) {
                return (false, f);
            }
            let text = lm.is_some() && codecs::looks_like_text(&s.data);
            let level = if text { zstd_level.max(19) } else { zstd_level };
            let frame = codecs::encode_zstd(&s.data, level);
            let bpb = 8.0 * frame.payload.len() as f64 / s.data.len() as f64;
            (text && bpb >= LM_ONLY_WORTH_TRYING_BPB, frame)
        })
        .collect();
    // Every candidate segment's pieces go to the model in one batched call,
    // so that they share model steps.
    let mut lm_chunks: Vec<&[u8]> = Vec::new();
    for (s, (try_lm, _)) in segments.iter().zip(&whole) {
        if *try_lm {
            lm_chunks.extend(s.data.chunks(LM_CHUNK_SIZE));
        }
    }
    let mut lm_coded = match (lm, lm_chunks.is_empty()) {
        (Some(lm), false) => lm.encode_chunks(&lm_chunks).into_iter(),
        _ => Vec::new().into_iter(),
    };
    segments
        .iter()
        .zip(whole)
        .map(|(s, (try_lm, whole))| {
            let mut frames = vec![whole];
            if try_lm {
                let mut lm_frames = Vec::new();
                for piece in s.data.chunks(LM_CHUNK_SIZE) {
                    let coded = lm_coded.next().expect("one result per chunk");
                    let zstd_piece = codecs::encode_zstd(piece, zstd_level.max(19));
                    let lm_frame = Frame::new(CodecId::LanguageModel, piece, coded);
                    lm_frames.push(smaller(lm_frame, zstd_piece));
                }
                let lm_total: usize = lm_frames.iter().map(Frame::encoded_len).sum();
                if lm_total < frames[0].encoded_len() {
                    frames = lm_frames;
                }
            }
            crate::runtime::progress::add(s.data.len() as u64);
            frames
        })
        .collect()
}

/// Text that zstd -19 codes at this many bits per byte or more is prose,
/// where the model wins by far and the trial without it (preset 3, one
/// chunk) is not run: it cost the second thread about 2 s of calgary/book1
/// (zstd 2.75 bpb), whose model chunk came to 1.80 bpb and the trial to
/// 2.09. The trial wins on tables, URL lists and reference works, which zstd
/// codes below 2 (snappy urls.10K: 1.8).
const TRIAL_BELOW_BPB: f64 = 2.2;

/// The `Lm` method's threshold (format-spec 7.6).
const LM_ONLY_WORTH_TRYING_BPB: f64 = 1.2;

/// How segments are coded.
pub(crate) struct Coding {
    /// zstd level of the zstd frames.
    pub(crate) zstd_level: i32,
    /// The method.
    pub(crate) method: Method,
    /// The language model, for the methods that use one.
    pub(crate) lm: Option<Arc<dyn TextCoder>>,
}

/// What a segment becomes before the model runs.
enum Plan {
    /// Final frames.
    Done(Vec<Frame>),
    /// Pieces for the language model: the whole-segment zstd frame to beat,
    /// each piece's zstd frame, and whether to try the segment as one
    /// chunk without the model too.
    Lm(Frame, Vec<Frame>, bool),
    /// One context-mixing chunk without the model, or the whole-segment
    /// zstd frame if that is smaller. Coded side by side with the model's
    /// pieces, not before them: a 5 MB segment of XML took about 9 s that
    /// the model's pieces of the same group used to wait for.
    Cm(Frame),
    /// As `Cm`, with the whole-segment zstd frame (of this level) made
    /// beside the context mixing rather than before it: where zstd -1
    /// already shrinks the segment, zstd's best level only decides between
    /// the two frames at the end. On calgary/book1 with `-m cm`, zstd -19
    /// took 21% of the time before the context mixing could start.
    CmBesideZstd(i32),
}

/// Code segments into frames, one list per segment (format-spec 8.6 for
/// the policy).
pub(crate) fn code_segments(segments: Vec<Segment>, c: &Coding) -> Vec<Vec<Frame>> {
    use rayon::prelude::*;
    let lm = c.lm.as_deref().filter(|_| c.method.uses_lm());
    if c.method == Method::Lm {
        return code_segments_lm(segments, c.zstd_level, lm);
    }
    let plans: Vec<Plan> = segments
        .par_iter()
        .map(|s| {
            let quick = (c.method != Method::Zstd).then(|| codecs::encode_zstd(&s.data, 1));
            if let Some(f) = quick.as_ref().filter(|f| is_degenerate(f)) {
                return Plan::Done(vec![f.clone()]);
            }
            let text = c.method != Method::Zstd && codecs::looks_like_text(&s.data);
            // Next to the models' cost, zstd's best level is cheap: text is
            // never larger than `zstd -19` would make it.
            let level = if text && c.method != Method::Fast {
                c.zstd_level.max(19)
            } else {
                c.zstd_level
            };
            // Coded without the model whatever zstd's best level gives,
            // unless that finds it incompressible, which zstd -1 already
            // rules out here (zstd -19 shrinks what zstd -1 shrinks): the
            // two are made side by side. The plan, and so the archive, is
            // the same as if zstd had gone first.
            let with_model = lm.is_some() && text;
            let without_model = !matches!(c.method, Method::Zstd | Method::Fast) && !with_model;
            if without_model && quick.as_ref().is_some_and(|f| bpb(f) < INCOMPRESSIBLE_BPB) {
                return Plan::CmBesideZstd(level);
            }
            // Text for the model is coded in pieces, each against its own
            // zstd frame: those frames are made beside the whole segment's
            // (which decides whether the model is tried at all), not after
            // it, since nothing else of the segment can start before both.
            // silesia/dickens (10 MB, three pieces) took 11.0 s for the
            // whole and 7.6 s for the pieces one after the other, with the
            // other thread idle: side by side, its `-T 2` create took
            // 48.2-48.9 s against 51.8-62.5 s (development VM, same bytes).
            let n = lm_pieces(s.data.len(), c.method);
            let (whole, pieces) = match with_model && n < s.data.len() {
                true => {
                    let (whole, pieces) = rayon::join(
                        || codecs::encode_zstd(&s.data, level),
                        || {
                            s.data
                                .par_chunks(n)
                                .map(|p| codecs::encode_zstd(p, level))
                                .collect::<Vec<_>>()
                        },
                    );
                    (whole, Some(pieces))
                }
                false => (codecs::encode_zstd(&s.data, level), None),
            };
            let bpb = bpb(&whole);
            if c.method == Method::Zstd || bpb >= INCOMPRESSIBLE_BPB {
                crate::runtime::progress::add(s.data.len() as u64);
                return Plan::Done(vec![whole]);
            }
            if with_model && bpb >= LM_WORTH_TRYING_BPB {
                // (one piece: its frame is the whole segment's)
                let pieces = pieces.unwrap_or_else(|| vec![whole.clone()]);
                return Plan::Lm(whole, pieces, bpb < TRIAL_BELOW_BPB);
            }
            if c.method == Method::Fast {
                // pieces, so that two threads share even one file
                let n = split_len(s.data.len(), FAST_PIECE, 128 << 10);
                let frames = s
                    .data
                    .par_chunks(n)
                    .map(|piece| {
                        smaller(
                            encode_cm(piece, c.method.preset()),
                            codecs::encode_zstd(piece, level),
                        )
                    })
                    .collect();
                return Plan::Done(frames);
            }
            Plan::Cm(whole)
        })
        .collect();
    // Every language-model piece of the group goes to the model in one
    // call, so that the pieces share batched model steps.
    let mut pieces: Vec<(&[u8], bool)> = Vec::new();
    for (s, plan) in segments.iter().zip(&plans) {
        if let Plan::Lm(..) = plan {
            let two = lm_preset(s.data.len(), c.method).two_streams;
            pieces.extend(
                s.data
                    .chunks(lm_pieces(s.data.len(), c.method))
                    .map(|p| (p, two)),
            );
        }
    }
    // Side by side with the model: the segments coded without it, and each
    // of the model's segments as one chunk without it, which wins where the
    // segment's own repetitions matter more than language (tables, lists of
    // URLs, reference works).
    let (coded, trials) = rayon::join(
        || match lm {
            Some(lm) if !pieces.is_empty() => {
                // one call per preset, results back in piece order
                let of = |two: bool| -> Vec<&[u8]> {
                    pieces.iter().filter(|p| p.1 == two).map(|p| p.0).collect()
                };
                let code = |two: bool, preset| match of(two) {
                    v if v.is_empty() => Vec::new(),
                    v => lm.encode_cm_chunks(&v, preset),
                };
                let mut a = code(true, crate::codecs::cm::WITH_LM_TWO_STREAMS).into_iter();
                let mut b = code(false, crate::codecs::cm::WITH_LM_CLASSES).into_iter();
                let mut next = |two| if two { a.next() } else { b.next() };
                pieces
                    .iter()
                    .map(|p| next(p.1).expect("one result per piece"))
                    .collect()
            }
            _ => Vec::new(),
        },
        || {
            segments
                .par_iter()
                .zip(&plans)
                .map(|(s, plan)| match plan {
                    // (the model's coding counts these bytes for progress)
                    Plan::Lm(_, _, true) => Some(vec![crate::runtime::progress::uncounted(|| {
                        encode_cm(&s.data, crate::codecs::cm::TEXT)
                    })]),
                    Plan::Cm(_) => Some(encode_cm_pieces(&s.data, c.method)),
                    Plan::CmBesideZstd(level) => {
                        let (whole, cm) = rayon::join(
                            || codecs::encode_zstd(&s.data, *level),
                            || encode_cm_pieces(&s.data, c.method),
                        );
                        // (zstd -1 shrank it, so zstd -19 almost surely
                        // does; if not, zstd's frame as `Done` would have
                        // been)
                        Some(match bpb(&whole) >= INCOMPRESSIBLE_BPB {
                            true => vec![whole],
                            false => pieces_or_whole(cm, whole),
                        })
                    }
                    Plan::Lm(..) | Plan::Done(_) => None,
                })
                .collect::<Vec<_>>()
        },
    );
    let mut coded = coded.into_iter();
    segments
        .iter()
        .zip(plans)
        .zip(trials)
        .map(|((s, plan), trial)| match plan {
            Plan::Done(frames) => frames,
            Plan::Cm(whole) => pieces_or_whole(trial.expect("coded beside the model"), whole),
            Plan::CmBesideZstd(_) => trial.expect("coded beside the model"),
            Plan::Lm(whole, zstd_pieces, _) => {
                let mut frames = Vec::new();
                let n = lm_pieces(s.data.len(), c.method);
                for (piece, zstd_piece) in s.data.chunks(n).zip(zstd_pieces) {
                    let payload = coded.next().expect("one result per piece");
                    let cm = Frame::new(CodecId::ContextMixing, piece, payload);
                    frames.push(smaller(cm, zstd_piece));
                }
                let single = match trial.and_then(|mut t| t.pop()) {
                    Some(cm) => smaller(cm, whole),
                    None => whole,
                };
                pieces_or_whole(frames, single)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file follows the last earlier file of its name whose size is
    /// within 25% of its own; every other file keeps its walk position.
    #[test]
    fn solid_sequence_puts_namesakes_of_similar_size_together() {
        let files = [
            ("v1/src/de.rs", 1000),
            ("v1/src/lib.rs", 400),
            ("v1/README", 90),
            ("v2/src/de.rs", 1100),   // follows v1's (1.10x)
            ("v2/src/lib.rs", 600),   // 1.5x v1's: a run of its own
            ("v2/README", 90),        // follows v1's
            ("v3/src/de.rs", 1375),   // 1.25x v2's: follows it
            ("v3/src/lib.rs", 480),   // within 25% of v2's 600: follows it
            ("v3/other/de.rs", 1376), // 1376 * 4 > 1375 * 5 is false: follows v3's
            ("v3/empty", 0),
            ("v4/empty", 0),
        ];
        assert_eq!(
            solid_sequence(&files),
            vec![0, 3, 6, 8, 1, 2, 5, 4, 7, 9, 10]
        );
        // a permutation of the input whatever the names
        let mut seen = solid_sequence(&files);
        seen.sort();
        assert_eq!(seen, (0..files.len()).collect::<Vec<_>>());
        assert!(solid_sequence(&[]).is_empty());
        // a file too far in size from a name's run starts a new one, which
        // the name's later files then join
        let grow = [("a/x", 100), ("b/x", 126), ("c/y", 5), ("d/x", 127)];
        assert_eq!(solid_sequence(&grow), vec![0, 1, 3, 2]);
    }

    /// Runs and zeros stay one zstd -1 frame whatever the method (a
    /// context-mixing trial of 32 MiB of zeros took 132 s); text and
    /// ordinary data do not take this way out.
    #[test]
    fn degenerate_segments_are_decided_by_zstd() {
        let mut text = Vec::new();
        let mut x = 1u32;
        while text.len() < 100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let words = ["the ", "archive ", "of ", "small ", "files ", "and\n"];
            text.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        }
        assert!(degenerate(&text).is_none());
        assert!(degenerate(b"x").is_none());
        for method in [Method::Cm, Method::Fast, Method::Default] {
            let coding = Coding {
                zstd_level: 12,
                method,
                lm: None,
            };
            for data in [vec![0u8; 4 << 20], b"abcdefgh".repeat(512 << 10)] {
                let out = code_segments(vec![Segment { data: data.clone() }], &coding);
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].len(), 1, "{method:?}");
                assert_eq!(out[0][0].header.codec, CodecId::Zstd, "{method:?}");
                let payload = &out[0][0].payload;
                assert_eq!(zstd::bulk::decompress(payload, data.len()).unwrap(), data);
            }
        }
    }

    /// At least `len` bytes of `words` picked by a linear congruential
    /// generator seeded with `seed`: text that context mixing codes well.
    fn word_text(seed: u32, len: usize, words: &[&str]) -> Vec<u8> {
        let mut x = seed;
        let mut text = Vec::new();
        while text.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            text.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        }
        text
    }

    #[test]
    fn each_thread_has_room_to_decode_any_chunk_of_this_plan() {
        // the decoders' default budget gives every thread one decoder of
        // the largest chunk lza writes (a whole segment), so no thread
        // waits for room with lza's own archives
        use crate::codecs::cm::{PRESETS, Predictor, budget::DECODE_MEMORY_PER_THREAD};
        for preset in PRESETS {
            for lm in [false, true] {
                let need = Predictor::memory(preset, DEFAULT_CHUNK_SIZE as usize, lm);
                assert!(
                    need <= DECODE_MEMORY_PER_THREAD,
                    "preset {}: {need}",
                    preset.id
                );
            }
        }
    }

    #[test]
    fn long_segments_without_the_model_are_coded_in_pieces() {
        let words = ["pieces ", "of ", "one ", "segment ", "decode\n", "apart "];
        let data = word_text(11, 100_000, &words);
        let preset = Method::Default.preset();
        let pieces = encode_cm_in_pieces(&data, preset, 40_000);
        // as few pieces of at most 40,000 bytes as can be, of equal length
        let lens: Vec<u32> = pieces.iter().map(|f| f.header.raw_len).collect();
        assert_eq!(lens, vec![33_334, 33_334, data.len() as u32 - 66_668]);
        let mut back = Vec::new();
        for f in &pieces {
            assert_eq!(f.header.codec, CodecId::ContextMixing);
            back.extend(crate::codecs::cm::decode(&f.payload, f.header.raw_len as usize).unwrap());
        }
        assert_eq!(back, data);
        // the pieces win against a larger whole frame, lose against a smaller one
        let total: usize = pieces.iter().map(Frame::encoded_len).sum();
        let stored = Frame::new(CodecId::Stored, &data, data.clone());
        assert_eq!(pieces_or_whole(pieces.clone(), stored.clone()), pieces);
        let zstd = codecs::encode_zstd(&data, 19);
        let tiny = Frame::new(CodecId::Zstd, &data, vec![0; total / 2]);
        assert_eq!(pieces_or_whole(pieces.clone(), tiny.clone()), vec![tiny]);
        // one piece: the smaller payload, as before pieces
        let one = encode_cm_in_pieces(&data, preset, usize::MAX);
        assert_eq!(one.len(), 1);
        assert_eq!(
            pieces_or_whole(one.clone(), zstd.clone()),
            vec![smaller(one[0].clone(), zstd)]
        );
        assert_eq!(
            cm_piece(Method::Max),
            usize::MAX,
            "max keeps whole segments"
        );
    }

    /// A segment coded without the model, with zstd -19 beside the context
    /// mixing, gets the frame that running zstd -19 first would give: the
    /// smaller of the two, or zstd's frame (stored here) for bytes that do
    /// not shrink.
    #[test]
    fn zstd_beside_context_mixing_keeps_the_plan() {
        let words = ["solid ", "blocks ", "of ", "small ", "files\n", "share "];
        let text = word_text(7, 50_000, &words);
        let noise = crate::codecs::lm::tests::lcg_bytes(20_000, 3);
        let coding = Coding {
            zstd_level: 3,
            method: Method::Cm,
            lm: None,
        };
        for data in [text, noise] {
            let out = code_segments(vec![Segment { data: data.clone() }], &coding);
            let whole = codecs::encode_zstd(&data, 19);
            let expect = match bpb(&whole) >= INCOMPRESSIBLE_BPB {
                true => whole,
                false => smaller(encode_cm(&data, Method::Cm.preset()), whole),
            };
            assert_eq!(out, vec![vec![expect.clone()]]);
            assert_ne!(
                expect.header.codec,
                CodecId::Zstd,
                "a case where zstd loses"
            );
        }
    }

    /// Pieces of the default and max methods: as few as can be of at most
    /// 4 MiB (default: an even number from 64 KiB on, except from 256 KiB
    /// to 4 MiB: one chunk of two streams).
    #[test]
    fn language_model_pieces() {
        const M: usize = 1 << 20;
        let count = |len: usize, m| len.div_ceil(lm_pieces(len, m));
        // (length, pieces and two streams with default, pieces with max)
        for (len, default, two, max) in [
            (1, 1, false, 1),
            ((64 << 10) - 1, 1, false, 1),
            (64 << 10, 2, false, 1),
            (152_089, 2, false, 1),
            ((256 << 10) - 1, 2, false, 1),
            (256 << 10, 1, true, 1),
            (768_771, 1, true, 1),
            (4 * M, 1, true, 1),
            (4 * M + 1, 2, false, 2),
            (8 * M + 1, 4, false, 3),
            (10_192_446, 4, false, 3),
            (32 * M, 8, false, 8),
        ] {
            assert_eq!(count(len, Method::Default), default, "default, {len} bytes");
            assert_eq!(count(len, Method::Max), max, "max, {len} bytes");
            assert_eq!(
                lm_preset(len, Method::Default).two_streams,
                two,
                "{len} bytes"
            );
            assert!(!lm_preset(len, Method::Max).two_streams, "{len} bytes");
            for m in [Method::Default, Method::Max] {
                assert!(lm_pieces(len, m) <= crate::codecs::cm::MAX_CM_LM_CHUNK);
            }
        }
    }
}
