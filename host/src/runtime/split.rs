//! Splitting a JavaScript or Python component into its engine and the rest,
//! so a redeploy reuses the engine's compiled code.
//!
//! A component built by componentize-js (or componentize-py) is one large
//! core module, the language engine pre-initialized with the user's code,
//! plus small glue. Two builds of one function differ only in that
//! module's *data* (the memory snapshot holding the user's code): its code,
//! types, imports and exports are the same bytes. So the component is
//! rewritten:
//!
//! - the **engine** is the module with every active data segment made an
//!   empty passive one (same segment count, same behaviour: active segments
//!   are dropped after instantiation anyway). It is the same for every
//!   build on one engine version, compiled once and kept by its hash;
//! - the **snapshot** is a module of data alone: it imports the engine's
//!   memory and holds the original active segments, so instantiating it
//!   writes the snapshot where it was;
//! - the **rest** is the component with the engine *imported* (a core
//!   module import named [`IMPORT_PREFIX`] and the engine's hash) and, last,
//!   the snapshot imported ([`SNAPSHOT_IMPORT`]) and instantiated on the
//!   engine's instance. It holds the glue only, so it too is the same bytes
//!   for every build, compiled once and kept by its hash.
//!
//! A new build then compiles only its snapshot, a module without code; the
//! data is copied at each instantiation instead of mapped copy-on-write, so
//! the whole component's own compilation replaces this form once it is
//! ready.

use sha2::Digest as _;
use wasm_encoder::reencode::{Reencode as _, RoundtripReencoder};
use wasmparser::{DataKind, ExternalKind, Payload, TypeRef};

/// Component imports of engines start with this, then the engine's hash.
pub const IMPORT_PREFIX: &str = "aura-engine-h";

/// The component import of the snapshot.
pub const SNAPSHOT_IMPORT: &str = "aura-engine-snapshot";

/// Engines with less code than this are not worth splitting out (any
/// code at all when fuzzing, so that small inputs reach the rewriting).
#[cfg(not(fuzzing))]
const MIN_ENGINE_CODE: usize = 1024 * 1024;
#[cfg(fuzzing)]
const MIN_ENGINE_CODE: usize = 1;

/// The size of a core module's code section.
fn code_size(module: &[u8]) -> usize {
    sections(module)
        .into_iter()
        .flatten()
        .find(|s| s.id == CODE)
        .map_or(0, |s| s.payload.len())
}

/// A component split into its engine and the rest.
pub struct Split {
    /// The engine module's bytes.
    pub engine: Vec<u8>,
    /// Their SHA-256, hex.
    pub hash: String,
    /// The name the rest imports the engine under.
    pub import: String,
    /// The rest: a component importing the engine (and the snapshot).
    pub component: Vec<u8>,
    /// The rest's SHA-256, hex.
    pub component_hash: String,
    /// The snapshot module, if the engine had active data.
    pub snapshot: Option<Vec<u8>>,
}

/// A section of a module or component: its id and its bytes.
struct Section<'a> {
    id: u8,
    payload: &'a [u8],
}

/// The sections after the 8-byte preamble, or `None` if they do not parse.
fn sections(bytes: &[u8]) -> Option<Vec<Section<'_>>> {
    let mut found = Vec::new();
    let mut rest = bytes.get(8..)?;
    while let Some((&id, tail)) = rest.split_first() {
        let mut reader = wasmparser::BinaryReader::new(tail, 0);
        let size = reader.read_var_u32().ok()? as usize;
        let start = reader.original_position();
        let payload = tail.get(start..start + size)?;
        found.push(Section { id, payload });
        rest = &tail[start + size..];
    }
    Some(found)
}

/// Appends a section with `id` and `payload` to `out`.
fn push_section(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.push(id);
    leb128_u32(out, payload.len() as u32);
    out.extend_from_slice(payload);
}

fn leb128_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

const CORE_MODULE: u8 = 1;
const CORE_INSTANCE: u8 = 2;
const CORE_TYPE: u8 = 3;
const ALIAS: u8 = 6;
const IMPORT: u8 = 10;
const CODE: u8 = 10;
const DATA: u8 = 11;

/// Splits `wasm` when it has the shape described above; `None` otherwise
/// (a Rust component, or one this rewriting does not understand).
pub fn split(wasm: &[u8]) -> Option<Split> {
    if !wasmparser::Parser::is_component(wasm) {
        return None;
    }
    let top = sections(wasm)?;
    // Index spaces the rewrite must know: core modules and core instances.
    // A core type section would shift with the one added: not handled.
    let mut modules = 0u32;
    let mut engine: Option<(usize, u32)> = None;
    for (position, section) in top.iter().enumerate() {
        match section.id {
            CORE_TYPE => return None,
            CORE_MODULE => {
                // The engine is the module with the most code.
                let largest = engine.map_or(0, |(p, _)| code_size(top[p].payload));
                if code_size(section.payload) >= MIN_ENGINE_CODE.max(largest + 1) {
                    engine = Some((position, modules));
                }
                modules += 1;
            }
            IMPORT => {
                let reader = wasmparser::ComponentImportSectionReader::new(
                    wasmparser::BinaryReader::new(section.payload, 0),
                )
                .ok()?;
                for import in reader {
                    if matches!(import.ok()?.ty, wasmparser::ComponentTypeRef::Module(_)) {
                        return None;
                    }
                }
            }
            ALIAS => {
                let reader = wasmparser::ComponentAliasSectionReader::new(
                    wasmparser::BinaryReader::new(section.payload, 0),
                )
                .ok()?;
                for alias in reader {
                    if let wasmparser::ComponentAlias::Outer {
                        kind: wasmparser::ComponentOuterAliasKind::CoreModule,
                        ..
                    } = alias.ok()?
                    {
                        modules += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let (position, module_index) = engine?;
    // The core instance the engine is instantiated as (once).
    let mut instances = 0u32;
    let mut engine_instance = None;
    for section in top.iter().filter(|s| s.id == CORE_INSTANCE) {
        let reader = wasmparser::InstanceSectionReader::new(wasmparser::BinaryReader::new(
            section.payload,
            0,
        ))
        .ok()?;
        for instance in reader {
            if let wasmparser::Instance::Instantiate {
                module_index: m, ..
            } = instance.ok()?
                && m == module_index
            {
                if engine_instance.is_some() {
                    return None;
                }
                engine_instance = Some(instances);
            }
            instances += 1;
        }
    }
    let engine_instance = engine_instance?;
    let parts = Parts::read(top[position].payload)?;
    let hash = hex::encode(sha2::Sha256::digest(&parts.engine));
    let import = format!("{IMPORT_PREFIX}{hash}");

    let mut component = wasm[..8].to_vec();
    for (i, section) in top.iter().enumerate() {
        if i != position {
            push_section(&mut component, section.id, section.payload);
            continue;
        }
        let mut types = wasm_encoder::CoreTypeSection::new();
        types.ty().module(&parts.ty);
        if let Some((_, snapshot_ty)) = &parts.snapshot {
            types.ty().module(snapshot_ty);
        }
        push_encoded(&mut component, &types);
        let mut imports = wasm_encoder::ComponentImportSection::new();
        imports.import(import.as_str(), wasm_encoder::ComponentTypeRef::Module(0));
        push_encoded(&mut component, &imports);
    }
    if parts.snapshot.is_some() {
        let mut imports = wasm_encoder::ComponentImportSection::new();
        imports.import(SNAPSHOT_IMPORT, wasm_encoder::ComponentTypeRef::Module(1));
        push_encoded(&mut component, &imports);
        let mut instantiate = wasm_encoder::InstanceSection::new();
        instantiate.instantiate(
            modules,
            [("engine", wasm_encoder::ModuleArg::Instance(engine_instance))],
        );
        push_encoded(&mut component, &instantiate);
    }
    Some(Split {
        engine: parts.engine,
        hash,
        import,
        component_hash: hex::encode(sha2::Sha256::digest(&component)),
        component,
        snapshot: parts.snapshot.map(|(module, _)| module.finish()),
    })
}

/// The offset of an active segment, when it is an `i32.const`.
fn constant_offset(expr: &wasmparser::ConstExpr) -> Option<u32> {
    let mut reader = expr.get_operators_reader();
    let offset = match reader.read().ok()? {
        wasmparser::Operator::I32Const { value } => value as u32,
        _ => return None,
    };
    matches!(reader.read().ok()?, wasmparser::Operator::End).then_some(offset)
}

/// Segments closer than this are written as one, with zeros between.
const MERGE_GAP: u32 = 4096;

/// The active segments as few segments (Wizer writes thousands, and each
/// costs wasmtime compile time): sorted, and those nearer than
/// [`MERGE_GAP`] joined. `None` when an offset is not a constant or two
/// segments overlap (then their order matters: kept as they are).
fn merged(segments: &[(Option<u32>, &[u8])]) -> Option<wasm_encoder::DataSection> {
    let mut sorted: Vec<(u32, &[u8])> = segments
        .iter()
        .map(|(offset, data)| offset.map(|o| (o, *data)))
        .collect::<Option<_>>()?;
    sorted.sort_by_key(|(offset, _)| *offset);
    let mut runs: Vec<(u32, Vec<u8>)> = Vec::new();
    for (offset, data) in sorted {
        match runs.last_mut() {
            Some((start, bytes)) if offset >= *start + bytes.len() as u32 => {
                let end = *start + bytes.len() as u32;
                if offset - end <= MERGE_GAP {
                    bytes.resize((offset - *start) as usize, 0);
                    bytes.extend_from_slice(data);
                    continue;
                }
                runs.push((offset, data.to_vec()));
            }
            Some(_) => return None,
            None => runs.push((offset, data.to_vec())),
        }
    }
    let mut section = wasm_encoder::DataSection::new();
    for (offset, bytes) in runs {
        section.active(0, &wasm_encoder::ConstExpr::i32_const(offset as i32), bytes);
    }
    Some(section)
}

/// Appends an encoded component section.
fn push_encoded(out: &mut Vec<u8>, section: &impl wasm_encoder::ComponentSection) {
    out.push(section.id());
    let mut payload = Vec::new();
    wasm_encoder::Encode::encode(section, &mut payload);
    // `encode` writes the size before the contents.
    out.extend_from_slice(&payload);
}

/// What the engine module becomes.
struct Parts {
    /// The module with empty data segments.
    engine: Vec<u8>,
    /// Its type, for the component's import.
    ty: wasm_encoder::ModuleType,
    /// The module writing the active segments into the engine's memory,
    /// and its type, if it had any (CPython's engine keeps its snapshot in
    /// a module of its own, which stays in the rest as it is).
    snapshot: Option<(wasm_encoder::Module, wasm_encoder::ModuleType)>,
}

impl Parts {
    fn read(module: &[u8]) -> Option<Self> {
        let mut reencoder = RoundtripReencoder;
        let mut ty = wasm_encoder::ModuleType::new();
        let mut func_types = Vec::new();
        let mut funcs: Vec<u32> = Vec::new();
        let mut memories = Vec::new();
        let mut globals = Vec::new();
        let mut tables = Vec::new();
        let mut exports = Vec::new();
        let mut passive = wasm_encoder::DataSection::new();
        let mut active = wasm_encoder::DataSection::new();
        let mut segments = Vec::new();
        let mut imports = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(module) {
            match payload.ok()? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        let group = group.ok()?;
                        let mut types = group.into_types();
                        let (Some(sub), None) = (types.next(), types.next()) else {
                            return None;
                        };
                        let wasmparser::CompositeInnerType::Func(func) = &sub.composite_type.inner
                        else {
                            return None;
                        };
                        let func = reencoder.func_type(func.clone()).ok()?;
                        ty.ty().function(
                            func.params().iter().copied(),
                            func.results().iter().copied(),
                        );
                        func_types.push(());
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.ok()?;
                        match import.ty {
                            TypeRef::Func(t) => funcs.push(t),
                            TypeRef::Memory(m) => memories.push(m),
                            TypeRef::Global(g) => globals.push(g),
                            TypeRef::Table(t) => tables.push(t),
                            _ => return None,
                        }
                        let entity = reencoder.entity_type(import.ty).ok()?;
                        imports.push((import.module.to_owned(), import.name.to_owned(), entity));
                    }
                }
                Payload::FunctionSection(reader) => {
                    for t in reader {
                        funcs.push(t.ok()?);
                    }
                }
                Payload::MemorySection(reader) => {
                    for m in reader {
                        memories.push(m.ok()?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for g in reader {
                        globals.push(g.ok()?.ty);
                    }
                }
                Payload::TableSection(reader) => {
                    for t in reader {
                        tables.push(t.ok()?.ty);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.ok()?;
                        exports.push((export.name.to_owned(), export.kind, export.index));
                    }
                }
                Payload::DataSection(reader) => {
                    for data in reader {
                        let data = data.ok()?;
                        match data.kind {
                            DataKind::Passive => {
                                passive.passive(data.data.iter().copied());
                            }
                            DataKind::Active {
                                memory_index: 0,
                                offset_expr,
                            } => {
                                passive.passive([]);
                                segments.push((constant_offset(&offset_expr), data.data));
                                let offset = reencoder.const_expr(offset_expr).ok()?;
                                active.active(0, &offset, data.data.iter().copied());
                            }
                            DataKind::Active { .. } => return None,
                        }
                    }
                }
                _ => {}
            }
        }
        if func_types.is_empty() {
            return None;
        }
        for (module, name, entity) in &imports {
            ty.import(module, name, *entity);
        }
        let mut memory_export = None;
        for (name, kind, index) in &exports {
            let index = *index as usize;
            let entity = match kind {
                ExternalKind::Func => wasm_encoder::EntityType::Function(*funcs.get(index)?),
                ExternalKind::Memory => {
                    if index == 0 {
                        memory_export = Some(name.clone());
                    }
                    wasm_encoder::EntityType::Memory(
                        reencoder.memory_type(*memories.get(index)?).ok()?,
                    )
                }
                ExternalKind::Global => wasm_encoder::EntityType::Global(
                    reencoder.global_type(*globals.get(index)?).ok()?,
                ),
                ExternalKind::Table => {
                    wasm_encoder::EntityType::Table(reencoder.table_type(*tables.get(index)?).ok()?)
                }
                _ => return None,
            };
            ty.export(name, entity);
        }
        // The engine: every section as it was but the data.
        let mut engine = module[..8].to_vec();
        for section in sections(module)? {
            if section.id == DATA {
                let mut payload = Vec::new();
                wasm_encoder::Encode::encode(&passive, &mut payload);
                engine.push(DATA);
                engine.extend_from_slice(&payload);
            } else {
                push_section(&mut engine, section.id, section.payload);
            }
        }

        if let Some(merged) = merged(&segments) {
            active = merged;
        }
        let snapshot = if active.is_empty() {
            None
        } else {
            let memory_export = memory_export?;
            let memory =
                wasm_encoder::EntityType::Memory(reencoder.memory_type(*memories.first()?).ok()?);
            let mut snapshot = wasm_encoder::Module::new();
            let mut memory_import = wasm_encoder::ImportSection::new();
            memory_import.import("engine", &memory_export, memory);
            snapshot.section(&memory_import);
            snapshot.section(&active);
            let mut ty = wasm_encoder::ModuleType::new();
            ty.import("engine", &memory_export, memory);
            Some((snapshot, ty))
        };
        Some(Self {
            engine,
            ty,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_without_a_large_module_are_not_split() {
        // A component with one small core module and nothing else.
        let module = wasm_encoder::Module::new();
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&module));
        assert!(split(&component.finish()).is_none());
        assert!(split(b"not wasm at all").is_none());
    }

    /// The built TypeScript and Python examples split into an engine and
    /// a rest that both validate (when the examples are built:
    /// `scripts/test.sh` builds them first).
    #[test]
    fn javascript_and_python_components_split_into_engine_and_rest() {
        for example in ["ts-hello", "py-hello"] {
            let path = format!(
                "{}/../examples/{example}/dist/{example}.wasm",
                env!("CARGO_MANIFEST_DIR")
            );
            let Ok(wasm) = std::fs::read(&path) else {
                eprintln!("{path} is not built: not run");
                continue;
            };
            check_split(&wasm);
        }
    }

    fn check_split(wasm: &[u8]) {
        let split = split(wasm).expect("the component splits");
        let mut validator =
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
        validator
            .validate_all(&split.engine)
            .expect("the engine validates");
        let mut validator =
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
        validator
            .validate_all(&split.component)
            .expect("the rest validates");
        if let Some(snapshot) = &split.snapshot {
            let mut validator =
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
            validator
                .validate_all(snapshot)
                .expect("the snapshot validates");
        }
        assert!(split.component.len() < wasm.len());
        assert!(split.import.starts_with(IMPORT_PREFIX));
        // Another build of a JavaScript function (here: its greeting
        // changed in the snapshot) has the same engine and rest, and another
        // snapshot.
        let greeting = b"Hello from TypeScript!";
        if let Some(at) = wasm.windows(greeting.len()).position(|w| w == greeting) {
            let mut other = wasm.to_vec();
            other[at] = b'J';
            let again = super::split(&other).expect("the other build splits");
            assert_eq!(
                (&again.hash, &again.component_hash),
                (&split.hash, &split.component_hash)
            );
            assert_ne!(again.snapshot, split.snapshot);
        }
    }
}
