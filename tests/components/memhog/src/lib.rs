//! Test component `memhog`: allocates memory 1 MiB at a time, writing every
//! page, until the host's memory limit stops it (allocation failure aborts
//! the component). Used by the end-to-end tests.

const CHUNK: usize = 1024 * 1024;
const PAGE: usize = 4096;

fn handle(_req: aura_sdk::Request) -> aura_sdk::Response {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        for page in chunk.chunks_mut(PAGE) {
            page[0] = 1;
        }
        chunks.push(std::hint::black_box(chunk));
    }
}

aura_sdk::http_function!(handle);
