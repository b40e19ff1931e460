//! Blobs kept in a bucket of another S3 service, so that several nodes
//! (on one PostgreSQL database) share objects: configured by one URL,
//! `s3+https://ACCESS_KEY:SECRET@host[:port]/bucket[/prefix]?region=…`
//! (`s3+http://` for a service on a private network or loopback). Requests
//! use path-style addressing, so any S3-compatible service works.

use super::blobs::ByteStream;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use std::path::Path;

/// The remote bucket.
pub struct Remote {
    client: Client,
    endpoint: String,
    bucket: String,
    prefix: String,
}

impl Remote {
    /// Parses the URL and builds the client (no request is made).
    pub fn from_url(text: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(text)
            .map_err(|e| anyhow::anyhow!("the storage URL is not a URL: {e}"))?;
        let scheme = match url.scheme() {
            "s3+https" => "https",
            "s3+http" => "http",
            other => anyhow::bail!(
                "the storage URL's scheme is `{other}`: use s3+https:// (or s3+http://), or file:// for a shared directory"
            ),
        };
        let host = url
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("the storage URL names no host"))?;
        let endpoint = match url.port() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let decode = |text: &str| {
            url::form_urlencoded::parse(format!("x={text}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (access_key, secret) = (decode(url.username()), decode(url.password().unwrap_or("")));
        anyhow::ensure!(
            !access_key.is_empty() && !secret.is_empty(),
            "the storage URL needs credentials: s3+https://ACCESS_KEY:SECRET@host/bucket"
        );
        let mut segments = url.path().trim_matches('/').splitn(2, '/');
        let bucket = segments.next().unwrap_or_default().to_owned();
        anyhow::ensure!(
            !bucket.is_empty(),
            "the storage URL names no bucket: …@host/bucket"
        );
        let prefix = segments
            .next()
            .map(|p| format!("{}/", p.trim_end_matches('/')))
            .unwrap_or_default();
        let region = url
            .query_pairs()
            .find(|(k, _)| k == "region")
            .map_or_else(|| "us-east-1".to_owned(), |(_, v)| v.into_owned());
        let described = endpoint.clone();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(access_key, secret, None, None, "aura"))
            .region(Region::new(region))
            .force_path_style(true)
            .build();
        Ok(Self {
            client: Client::from_conf(config),
            endpoint: described,
            bucket,
            prefix,
        })
    }

    /// Where blobs go, without credentials.
    pub fn describe(&self) -> String {
        format!(
            "the S3 bucket {}/{}/{}",
            self.endpoint, self.bucket, self.prefix
        )
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// Checks that the bucket answers, so a wrong URL fails at start.
    pub async fn check(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "the storage bucket `{}` does not answer: {}",
                    self.bucket,
                    err.code().unwrap_or("no answer")
                )
            })?;
        Ok(())
    }

    /// Uploads a finished temporary file as blob `id`.
    pub async fn put_file(&self, id: &str, path: &Path, size: u64) -> anyhow::Result<()> {
        let body = aws_sdk_s3::primitives::ByteStream::read_from()
            .path(path)
            .length(aws_sdk_s3::primitives::Length::Exact(size))
            .build()
            .await?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .body(body)
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!("uploading a blob: {}", err.code().unwrap_or("no answer"))
            })?;
        Ok(())
    }

    /// The `length` bytes of blob `id` from `start`.
    pub async fn get(&self, id: &str, start: u64, length: u64) -> std::io::Result<ByteStream> {
        if length == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(id));
        // The whole blob needs no range; `u64::MAX` means "to the end".
        if start > 0 || length != u64::MAX {
            let last = start.saturating_add(length - 1).min(i64::MAX as u64);
            request = request.range(format!("bytes={start}-{last}"));
        }
        let answer = request.send().await;
        let output = match answer {
            Ok(output) => output,
            Err(err) if err.code() == Some("NoSuchKey") => {
                return Err(std::io::ErrorKind::NotFound.into());
            }
            // A range past the end of an empty object.
            Err(err) if err.code() == Some("InvalidRange") => {
                return Ok(Box::pin(futures::stream::empty()));
            }
            Err(err) => {
                return Err(std::io::Error::other(format!(
                    "reading a blob: {}",
                    err.code().unwrap_or("no answer")
                )));
            }
        };
        let reader = output.body.into_async_read();
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            super::READ_CHUNK,
        )))
    }

    /// Deletes blob `id`.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!("deleting a blob: {}", err.code().unwrap_or("no answer"))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_are_checked() {
        let remote =
            Remote::from_url("s3+http://AK:se%2Fcret@127.0.0.1:9000/blobs/node/a").unwrap();
        assert_eq!(remote.bucket, "blobs");
        assert_eq!(remote.key("x"), "node/a/x");
        assert_eq!(
            Remote::from_url("s3+https://AK:S@host/b").unwrap().key("x"),
            "x"
        );
        for (bad, why) in [
            ("https://AK:S@host/b", "scheme"),
            ("s3+https://host/b", "credentials"),
            ("s3+https://AK:S@host/", "no bucket"),
            ("not a url", "not a URL"),
        ] {
            let err = Remote::from_url(bad).err().expect(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
