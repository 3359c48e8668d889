//! The presets (format-spec 8.5): fixed sets of contexts, table sizes and
//! mixing choices, one of which a payload's first byte names. [`PRESETS`]
//! holds them by id.

use super::image::IMAGE_CONTEXTS;

/// Weight sets a, b and c (format-spec 8.4, "Mixing").
pub(super) const WEIGHT_SETS: usize = 256 + 64 + 256 * 8;

/// A fixed set of models (format-spec 8.5). Which one a chunk uses is in
/// its payload's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Wire value.
    pub id: u8,
    /// Name in format-spec 8.5.
    pub name: &'static str,
    /// Hashed context orders (bytes of history), in input order.
    pub orders: &'static [u32],
    /// Word contexts (current word; current and previous word).
    pub words: bool,
    /// Column context (position in the line, byte above) and a sparse
    /// context (the two bytes before the last).
    pub columns: bool,
    /// log2 of the largest hashed table in bytes.
    pub max_table_log: u32,
    /// One weight set (by partial byte) and one APM stage instead of three
    /// weight sets and two or three stages.
    pub single_mixer: bool,
    /// log2 of the hashed table's bytes per input byte.
    pub table_shift: u32,
    /// Mixer learning rate (error times rate, shifted right by 12).
    pub mixer_rate: i32,
    /// The mixer's rate falls as the chunk is coded, from 3 to 0.625 (in
    /// sixteenths: `max(10, 48 - n / 4096)` after `n` bytes); `mixer_rate`
    /// is unused.
    pub mixer_decay: bool,
    /// Shortest match the match model follows (at most 8).
    pub match_min: usize,
    /// Token (letters and digits after a separator) and word-trigram
    /// contexts, with `words`.
    pub tokens: bool,
    /// A context of everything since the line's start.
    pub line_prefix: bool,
    /// Record contexts: bytes one and two record lengths back, the record
    /// length detected from repeating byte distances.
    pub records: bool,
    /// An APM stage in an order-2 context (hashed to 8 bits).
    pub apm_order2: bool,
    /// An APM stage in the match model's state.
    pub apm_match: bool,
    /// A context of the position in the line alone (where lines break).
    pub line_column: bool,
    /// A fourth weight set, by the class of the previous byte, the bit
    /// position and the model's confidence.
    pub class_set: bool,
    /// With the model, an APM stage in the model's opinion and the class of
    /// the previous byte.
    pub apm_class: bool,
    /// Image contexts for 16-bit little-endian samples (format-spec 8.8),
    /// whose row width and first byte are in the payload header.
    pub image: bool,
    /// Sparse contexts for binary data (format-spec 8.4), after the orders.
    pub code: bool,
    /// The chunk is coded as two streams, its first and second half, a
    /// byte of each in turn; the streams share the tables, mixers and APMs
    /// and keep their own history and contexts (format-spec 8.4, "Two
    /// streams").
    pub two_streams: bool,
}

/// Normal: orders 1-6, word contexts, the match model.
pub const NORMAL: Preset = Preset {
    id: 1,
    name: "normal",
    orders: &[2, 3, 4, 5, 6, 8],
    words: true,
    columns: true,
    max_table_log: 26,
    single_mixer: false,
    table_shift: 4,
    mixer_rate: 3,
    mixer_decay: false,
    match_min: 6,
    tokens: false,
    line_prefix: false,
    records: false,
    apm_order2: false,
    apm_match: false,
    line_column: false,
    class_set: false,
    apm_class: false,
    image: false,
    code: false,
    two_streams: false,
};

/// Fast: orders 1-4 and 6, the match model.
pub const FAST: Preset = Preset {
    id: 0,
    name: "fast",
    orders: &[2, 3, 4, 6],
    words: false,
    columns: false,
    max_table_log: 24,
    single_mixer: true,
    ..NORMAL
};

/// Lighter contexts next to the language model.
pub const WITH_LM: Preset = Preset {
    id: 2,
    name: "with-model",
    orders: &[2, 3, 4, 6],
    ..NORMAL
};

/// Text: preset 1 with more contexts (tokens, word trigrams, line prefix,
/// records), larger tables and two more APM stages (order 2, match). What
/// the encoder tries on text without the model, and the base of presets 6,
/// 7 and 9.
pub const TEXT: Preset = Preset {
    id: 3,
    name: "text",
    max_table_log: 27,
    table_shift: 7,
    mixer_rate: 2,
    match_min: 5,
    tokens: true,
    line_prefix: true,
    records: true,
    apm_order2: true,
    apm_match: true,
    ..NORMAL
};

/// With the model: preset 2 with token and word-trigram contexts, larger
/// tables and the order-2 APM stage.
pub const WITH_LM_TOKENS: Preset = Preset {
    id: 4,
    name: "with-model-tokens",
    table_shift: 6,
    mixer_rate: 2,
    tokens: true,
    apm_order2: true,
    ..WITH_LM
};

/// With the model: preset 4 with a line-column context, a weight set by
/// byte class and an APM stage by the model's opinion and byte class.
pub const WITH_LM_CLASSES: Preset = Preset {
    id: 5,
    name: "with-model-classes",
    line_column: true,
    class_set: true,
    apm_class: true,
    ..WITH_LM_TOKENS
};

/// Preset 5 over two streams (the chunk's halves, interleaved byte by
/// byte): one chunk's history for both halves, while the language model
/// still has two independent chains to run side by side.
pub const WITH_LM_TWO_STREAMS: Preset = Preset {
    id: 8,
    name: "with-model-two-streams",
    two_streams: true,
    mixer_decay: true,
    ..WITH_LM_CLASSES
};

/// 16-bit images: orders 2 and 3 and 14 image contexts in place of the
/// text and record contexts; the mixer and two APM stages select by the
/// image's predictions (format-spec 8.8).
pub const IMAGE16: Preset = Preset {
    id: 6,
    name: "image-16",
    orders: &[2, 3],
    words: false,
    columns: false,
    tokens: false,
    line_prefix: false,
    records: false,
    image: true,
    mixer_rate: 1,
    ..TEXT
};

/// Binary data (machine code, databases, tables): preset 3 with five
/// sparse contexts after the orders.
pub const BINARY: Preset = Preset {
    id: 7,
    name: "binary",
    code: true,
    ..TEXT
};

/// Text at about 1.4 times preset 3's speed: preset 3 without orders 5
/// and 8, the line prefix, the records and the match APM, with 64 table
/// bytes per input byte and the falling mixer rate of preset 8. Ten hashed
/// contexts instead of 16 (each costs two cache lines a byte and its share
/// of the mixer); on calgary/book1 199,480 bytes against preset 3's 200,328
/// (the falling rate gains what the contexts gave), silesia/xml's first
/// 2 MiB 157,293 against 156,002, calgary/obj2 58,624 against 57,036.
pub const TEXT_FAST: Preset = Preset {
    id: 9,
    name: "text-fast",
    orders: &[2, 3, 4, 6],
    table_shift: 6,
    mixer_decay: true,
    line_prefix: false,
    records: false,
    apm_match: false,
    ..TEXT
};

/// Every preset, by id (format-spec 8.5).
pub const PRESETS: [Preset; 10] = [
    FAST,
    NORMAL,
    WITH_LM,
    TEXT,
    WITH_LM_TOKENS,
    WITH_LM_CLASSES,
    IMAGE16,
    BINARY,
    WITH_LM_TWO_STREAMS,
    TEXT_FAST,
];

impl Preset {
    /// The preset with wire value `id`.
    pub fn from_id(id: u8) -> Option<Preset> {
        PRESETS.get(id as usize).copied()
    }

    /// Hashed contexts: orders, then words, tokens, line prefix, records,
    /// columns, line column, image and sparse contexts as the flags say.
    pub(super) fn hashed(&self) -> usize {
        self.orders.len()
            + if self.words { 2 } else { 0 }
            + if self.words && self.tokens { 2 } else { 0 }
            + if self.line_prefix { 1 } else { 0 }
            + if self.records { 3 } else { 0 }
            + if self.columns { 2 } else { 0 }
            + if self.line_column { 1 } else { 0 }
            + if self.image { IMAGE_CONTEXTS } else { 0 }
            + if self.code { 5 } else { 0 }
    }

    /// Weight sets: 2,368 (a, b, c) and 512 more with the class set.
    pub(super) fn weight_sets(&self) -> usize {
        WEIGHT_SETS + if self.class_set { 512 } else { 0 }
    }
}
