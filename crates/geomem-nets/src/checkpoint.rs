//! Checkpoints: one file holding the configuration, the step, the weights, the EMA weights
//! and the optimizer state, protected by a checksum and written atomically.
//!
//! Layout (little endian): `b"GEOMEMCK"`, `u32` format version, then four sections each
//! prefixed by its `u64` length — JSON metadata (`step`, `config`), model record, EMA
//! record, optimizer record (burn `BinBytesRecorder`, full precision) — then the `u64`
//! FNV-1a hash of every preceding byte. The file is written to `checkpoint.bin.tmp`,
//! synced, and renamed over `checkpoint.bin`, so a run killed at any moment leaves either
//! the previous or the new checkpoint, never a partial one.

use crate::error::{io, NetsError, Result};
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::Adam;
use burn::optim::{AdamConfig, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use std::io::Write;
use std::path::Path;

/// File name of the checkpoint inside a run directory.
pub const FILE: &str = "checkpoint.bin";
const MAGIC: &[u8; 8] = b"GEOMEMCK";
const VERSION: u32 = 1;

pub(crate) type Rec = BinBytesRecorder<FullPrecisionSettings>;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    step: u64,
    config: serde_json::Value,
}

pub(crate) fn rec_err(e: impl std::fmt::Display) -> NetsError {
    NetsError::Record(e.to_string())
}

/// Encodes any trained module (weights, EMA weights, Adam state) with its step and
/// configuration (the layout of the module doc).
pub(crate) fn encode_parts<B: AutodiffBackend, M: AutodiffModule<B>>(
    step: u64,
    config: serde_json::Value,
    model: &M,
    ema: &M::InnerModule,
    optim: &OptimizerAdaptor<Adam, M, B>,
) -> Result<Vec<u8>> {
    let rec = Rec::default();
    let meta = serde_json::to_vec(&Meta { step, config }).map_err(rec_err)?;
    let model = Recorder::<B>::record(&rec, model.clone().into_record(), ()).map_err(rec_err)?;
    let ema = Recorder::<B::InnerBackend>::record(&rec, ema.clone().into_record(), ()).map_err(rec_err)?;
    let optim = Recorder::<B>::record(&rec, optim.to_record(), ()).map_err(rec_err)?;
    let mut out = Vec::with_capacity(64 + meta.len() + model.len() + ema.len() + optim.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for s in [&meta, &model, &ema, &optim] {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }
    let h = fnv1a(&out);
    out.extend_from_slice(&h.to_le_bytes());
    Ok(out)
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("bin.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Splits and verifies checkpoint bytes: returns (step, config JSON, model, EMA, optimizer).
pub(crate) fn sections<'a>(path: &Path, b: &'a [u8]) -> Result<(u64, serde_json::Value, [&'a [u8]; 3])> {
    let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
    if b.len() < 12 + 8 || &b[..8] != MAGIC {
        return Err(bad("not a geomem checkpoint (bad magic or too short)".into()));
    }
    let (body, tail) = b.split_at(b.len() - 8);
    let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
    if fnv1a(body) != stored {
        return Err(bad("checksum mismatch: the file is truncated or corrupted".into()));
    }
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!("format version {version}, this build reads {VERSION}")));
    }
    let mut rest = &body[12..];
    let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
    for _ in 0..4 {
        if rest.len() < 8 {
            return Err(bad("truncated section header".into()));
        }
        let (len, r) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        if r.len() < len {
            return Err(bad("truncated section".into()));
        }
        parts.push(&r[..len]);
        rest = &r[len..];
    }
    let meta: Meta = serde_json::from_slice(parts[0]).map_err(|e| bad(format!("metadata: {e}")))?;
    Ok((meta.step, meta.config, [parts[1], parts[2], parts[3]]))
}

/// Weights, EMA weights and Adam state of a module.
pub(crate) type Parts<B, M> = (M, <M as AutodiffModule<B>>::InnerModule, OptimizerAdaptor<Adam, M, B>);

/// Loads the three records of a checkpoint into skeletons of the right shapes.
pub(crate) fn load_parts<B: AutodiffBackend, M: AutodiffModule<B>>(
    path: &Path,
    [m, e, o]: [&[u8]; 3],
    model: M,
    ema: M::InnerModule,
    adam: &AdamConfig,
    device: &B::Device,
) -> Result<Parts<B, M>> {
    let bad = |reason: String| NetsError::CorruptCheckpoint { path: path.to_path_buf(), reason };
    let rec = Rec::default();
    let model = load_checked(
        model,
        Recorder::<B>::load(&rec, m.to_vec(), device).map_err(|e| bad(format!("model record: {e}")))?,
        "model",
    )
    .map_err(bad)?;
    let ema = load_checked(
        ema,
        Recorder::<B::InnerBackend>::load(&rec, e.to_vec(), device).map_err(|e| bad(format!("EMA record: {e}")))?,
        "EMA",
    )
    .map_err(bad)?;
    let optim = adam.init::<B, M>();
    let optim = optim
        .load_record(Recorder::<B>::load(&rec, o.to_vec(), device).map_err(|e| bad(format!("optimizer record: {e}")))?);
    Ok((model, ema, optim))
}

/// Shapes of every float parameter, in visiting order.
struct Shapes(Vec<Vec<usize>>);

impl<B: Backend> burn::module::ModuleVisitor<B> for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
        self.0.push(param.shape().dims::<D>().to_vec());
    }
}

pub(crate) fn shapes<B: Backend, M: Module<B>>(m: &M) -> Vec<Vec<usize>> {
    let mut s = Shapes(Vec::new());
    m.visit(&mut s);
    s.0
}

/// Loads `record` into `skeleton` and checks that every parameter kept its shape (burn
/// takes a record's tensors as they come, so a record of another network would only fail
/// later, inside a forward pass).
pub(crate) fn load_checked<B: Backend, M: Module<B>>(
    skeleton: M,
    record: M::Record,
    what: &str,
) -> std::result::Result<M, String> {
    let want = shapes::<B, _>(&skeleton);
    let loaded = skeleton.load_record(record);
    let got = shapes::<B, _>(&loaded);
    if want == got {
        Ok(loaded)
    } else {
        Err(format!("{what} record has parameter shapes {got:?}, the configuration needs {want:?}"))
    }
}
