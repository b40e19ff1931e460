//! The `aura` command line: `serve`, and the client commands that talk to a
//! running server over its admin API (`deploy`, `functions …`, `logs`).

mod backup;
mod build;
mod client;
mod collections;
mod env;
mod init;
mod manifest;
mod project;

mod secrets;
mod storage;
mod table;
mod tokens;
mod types;

use crate::server::{self, ServeOptions};
use clap::{Args, Parser, Subcommand};
use client::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use table::Table;

/// Aura: deploy WebAssembly components and invoke them over HTTP.
#[derive(Debug, Parser)]
#[command(name = "aura", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: Connection,
}

/// How client commands reach the server.
#[derive(Debug, Args)]
struct Connection {
    /// Server URL [default: http://127.0.0.1:8090]
    #[arg(long, env = "AURA_URL", global = true)]
    url: Option<String>,
    /// Admin token [default: read from DATA_DIR/admin.token]
    #[arg(long, env = "AURA_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Data directory (for `serve`, and to find the admin token)
    #[arg(
        long,
        env = "AURA_DATA_DIR",
        global = true,
        default_value = "./aura-data"
    )]
    data_dir: PathBuf,
    /// Print the server's JSON answers as they are
    #[arg(long, global = true)]
    json: bool,
    /// The environment to act on [default: the one `aura env use` chose,
    /// else `default`]
    #[arg(long = "env", env = "AURA_ENV", global = true)]
    environment: Option<String>,
    /// Answer yes to the questions of destructive commands (for scripts)
    #[arg(long, short = 'y', global = true)]
    yes: bool,
}

// Parsed once per run: the size of `Serve`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Aura server
    Serve {
        /// Address to listen on (port 0 picks a free one)
        #[arg(long, env = "AURA_ADDR", default_value = "127.0.0.1:8090")]
        addr: String,
        /// Instances that may run at once; further invocations get 503
        #[arg(long, env = "AURA_MAX_INSTANCES", default_value_t = crate::runtime::DEFAULT_MAX_INSTANCES)]
        max_instances: u32,
        /// MiB of memory all running functions may hold together (default:
        /// half of the machine's memory); past it invocations get 503
        #[arg(long, env = "AURA_MEMORY_BUDGET_MB", value_name = "MIB")]
        memory_budget_mb: Option<u64>,
        /// Resolve NAME to IP for functions' outbound requests, before DNS
        /// (repeatable; AURA_RESOLVE takes a comma-separated list)
        #[arg(
            long,
            env = "AURA_RESOLVE",
            value_name = "NAME=IP",
            value_delimiter = ','
        )]
        resolve: Vec<String>,
        /// PEM file of extra root certificates trusted for functions'
        /// outbound HTTPS (added to the Mozilla roots)
        #[arg(long, env = "AURA_OUTBOUND_CA", value_name = "FILE")]
        outbound_ca: Option<PathBuf>,
        /// Asynchronous invocations that may wait at once; more get 503
        #[arg(long, env = "AURA_MAX_QUEUED", default_value_t = 10_000)]
        max_queued: u64,
        /// Realtime events kept for Last-Event-ID resume; a subscriber this
        /// far behind is disconnected
        #[arg(long, env = "AURA_REALTIME_BUFFER", default_value_t = 1024)]
        realtime_buffer: usize,
        /// Seconds after which a presence member whose node stopped
        /// refreshing it is removed; streams with members get a keep-alive
        /// every third of it
        #[arg(long, env = "AURA_PRESENCE_TIMEOUT", default_value_t = 30)]
        presence_timeout: u64,
        /// Where collections and records live: `memory`, a SQLite file, or
        /// a `postgres://` URL [default: DATA/collections.db]
        #[arg(long, env = "AURA_DATABASE_URL", value_name = "URL")]
        database: Option<String>,
        /// Where object bytes live, one place for every node of a shared
        /// database: a bucket of an S3 service
        /// (`s3+https://KEY:SECRET@host/bucket[/prefix]?region=…`) or a
        /// directory every node mounts (`file:///path`) [default: DATA/storage]
        #[arg(long, env = "AURA_STORAGE_URL", value_name = "URL")]
        storage_url: Option<String>,
        /// Where the S3-compatible API listens (`off` to disable it)
        #[arg(long, env = "AURA_S3_ADDR", default_value = "127.0.0.1:8091")]
        s3_addr: String,
        #[command(flatten)]
        auth: crate::auth::AuthOptions,
        #[command(flatten)]
        master_key: crate::secrets::keys::MasterKeyOptions,
        /// Take a backup every hour into DATA/backups, keeping those of the
        /// last day, one a day for a week and one a week for a month
        #[arg(long, env = "AURA_AUTO_BACKUP")]
        auto_backup: bool,
        /// Days the audit log keeps its entries (0: forever)
        #[arg(long, env = "AURA_AUDIT_RETENTION_DAYS", default_value_t = 90)]
        audit_retention_days: u32,
        /// Milliseconds a record list shaped by its caller (a filter, a
        /// sort) may run before it is stopped with 503 `query_timeout`
        #[arg(long, env = "AURA_QUERY_TIMEOUT_MS", value_name = "MS", default_value_t = crate::db::DEFAULT_QUERY_TIMEOUT.as_millis() as u64)]
        query_timeout_ms: u64,
        /// What an acknowledged write survives: `fast`, the process being
        /// killed; `safe`, an OS crash or power loss too (SQLite
        /// `synchronous=FULL`, directories synced after renames)
        #[arg(long, env = "AURA_DURABILITY", value_enum, default_value_t = crate::db::Durability::Fast)]
        durability: crate::db::Durability,
        /// Print a one-time dashboard sign-in link at start: `auto` only
        /// when standard output is a terminal (so service logs never hold
        /// one), `always`, or `never`
        #[arg(long, env = "AURA_SIGN_IN_LINK", value_enum, default_value = "auto")]
        sign_in_link: SignInLink,
    },
    /// Remember a server for later commands from any directory: its URL and
    /// admin token (--token, AURA_TOKEN, or standard input), kept in the
    /// CLI's settings, outside projects
    Login {
        /// The server's URL
        url: String,
    },
    /// Forget the server `aura login` remembered
    Logout,
    /// Build the TypeScript, JavaScript or Python function project in DIR
    /// into a component (bundle, componentize, check the grants)
    Build {
        /// The project [default: .]
        dir: Option<PathBuf>,
    },
    /// Deploy a component as a new version of a function and activate it
    Deploy {
        /// The component file [default: the project's build output, `[build] out` or dist/NAME.wasm]
        file: Option<PathBuf>,
        #[command(flatten)]
        deploy: manifest::DeployArgs,
    },
    /// List and manage deployed functions
    Functions {
        #[command(subcommand)]
        command: FunctionsCommand,
    },
    /// Run functions on cron schedules
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Define, migrate and inspect collections
    Collections {
        #[command(subcommand)]
        command: collections::CollectionsCommand,
    },
    /// Create a self-contained function project with an aura.toml
    Init {
        /// The function's name (a-z, 0-9, -)
        name: String,
        /// Where [default: ./NAME]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The project's language
        #[arg(long, default_value = "ts", value_parser = ["ts", "js", "python", "rust"])]
        lang: String,
    },
    /// List, create and choose environments, and promote one into another
    Env {
        #[command(subcommand)]
        command: env::EnvCommand,
    },
    /// Apply a project directory (aura.toml, collections/, functions/) to
    /// the environment, after showing the changes
    Push {
        /// The project directory
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Write the environment's definition into a project directory
    Pull {
        /// The project directory
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a one-time link that signs the browser in to the dashboard
    Dashboard,
    /// Write TypeScript types of the collections for @aura/client
    Types {
        /// Read the collections of this project folder (`aura pull`)
        /// instead of the server's
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The file to write (default: print them)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the snapshots of the environment's definition (one per push)
    Snapshots,
    /// Restore the definition (collections, functions, schedules; not
    /// data) of a snapshot
    Rollback {
        /// The snapshot's id (`aura snapshots`)
        snapshot: i64,
    },
    /// Take, list and restore backups
    Backup {
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Manage secrets (values functions read under a `secrets` grant)
    Secrets {
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// Mint, list and revoke named admin tokens (they work on every node)
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Manage buckets and S3 access keys
    Storage {
        #[command(subcommand)]
        command: storage::StorageCommand,
    },
    /// Show recent invocations of a function with their stdout/stderr
    Logs {
        /// Function name
        name: String,
        /// Keep printing new invocations as they happen
        #[arg(long, short)]
        follow: bool,
        /// How many recent invocations to show first
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
enum FunctionsCommand {
    /// List functions
    List,
    /// Show one function
    Show { name: String },
    /// List a function's versions
    Versions { name: String },
    /// Show the grants of a function's active version
    Grants { name: String },
    /// Re-activate the previous version (or --to VERSION)
    Rollback {
        name: String,
        #[arg(long)]
        to: Option<i64>,
    },
    /// Delete a function with all its versions and logs
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum SchedulesCommand {
    /// Create (or replace) a schedule
    Add {
        /// Schedule name
        name: String,
        /// Cron expression: 5 fields, or 6-7 with seconds first
        #[arg(long)]
        cron: String,
        /// Function to invoke
        #[arg(long)]
        function: String,
        /// IANA time zone the expression is read in [default: UTC]
        #[arg(long)]
        tz: Option<String>,
        /// JSON body sent to the function [default: {}]
        #[arg(long)]
        payload: Option<String>,
        /// Request path [default: /]
        #[arg(long)]
        path: Option<String>,
        /// Retries after a failed attempt [default: 2]
        #[arg(long)]
        retries: Option<u32>,
        /// When a run is due while one is still going: skip or queue [default: skip]
        #[arg(long)]
        overlap: Option<String>,
        /// Runs missed while the server was down: skip or run-once [default: skip]
        #[arg(long)]
        missed: Option<String>,
    },
    /// List schedules
    List,
    /// Stop firing a schedule
    Pause { name: String },
    /// Fire a paused schedule again, from its next tick
    Resume { name: String },
    /// Fire a run now
    RunNow { name: String },
    /// Show a schedule's recent runs
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Delete a schedule and its history
    Remove { name: String },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let connection = cli.connection;
    if let Command::Serve {
        addr,
        max_instances,
        memory_budget_mb,
        resolve,
        outbound_ca,
        max_queued,
        realtime_buffer,
        presence_timeout,
        database,
        storage_url,
        s3_addr,
        auth,
        master_key,
        auto_backup,
        audit_retention_days,
        query_timeout_ms,
        durability,
        sign_in_link,
    } = cli.command
    {
        init_tracing();
        return server::serve(ServeOptions {
            addr,
            data_dir: connection.data_dir,
            max_instances,
            memory_budget_mb,
            resolve,
            outbound_ca,
            max_queued,
            realtime_buffer,
            presence_timeout: std::time::Duration::from_secs(presence_timeout.max(1)),
            database,
            storage_url,
            s3_addr: (s3_addr != "off").then_some(s3_addr),
            auth,
            master_key,
            auto_backup,
            audit_retention_days,
            query_timeout: std::time::Duration::from_millis(query_timeout_ms.max(1)),
            durability,
            sign_in_link: match sign_in_link {
                SignInLink::Auto => std::io::IsTerminal::is_terminal(&std::io::stdout()),
                SignInLink::Always => true,
                SignInLink::Never => false,
            },
        })
        .await;
    }
    if let Command::Backup {
        command:
            backup::BackupCommand::Restore {
                backup,
                master_key_file,
            },
    } = &cli.command
    {
        return backup::restore(
            backup,
            &connection.data_dir,
            master_key_file.as_deref(),
            connection.json,
        );
    }
    if let Command::Init { name, dir, lang } = &cli.command {
        let lang = build::Lang::parse(lang)?;
        let dir = init::run(name, dir.clone(), lang)?;
        println!(
            "created {}\n{}",
            dir.display(),
            init::next_steps(name, &dir, lang)
        );
        return Ok(());
    }
    if let Command::Login { url } = &cli.command {
        let token = match connection.token.clone() {
            Some(token) => token,
            None => {
                use std::io::{IsTerminal as _, Read as _};
                anyhow::ensure!(
                    !std::io::stdin().is_terminal(),
                    "pass the admin token with --token or AURA_TOKEN, or on standard input"
                );
                let mut token = String::new();
                std::io::stdin().read_to_string(&mut token)?;
                token.trim().to_owned()
            }
        };
        // Checked before it is kept.
        let client = Client::new(
            Some(url),
            Some(token.clone()),
            &connection.data_dir,
            None,
            true,
        )?;
        client.get("/api/admin/functions").await?;
        let dir = client::login(client.base(), &token)?;
        println!(
            "logged in to {} (saved in {})",
            client.base(),
            dir.display()
        );
        return Ok(());
    }
    if let Command::Logout = &cli.command {
        let removed = client::logout()?;
        println!(
            "{}",
            if removed {
                "logged out"
            } else {
                "not logged in"
            }
        );
        return Ok(());
    }
    if let Command::Build { dir } = &cli.command {
        build::run(dir.as_deref().unwrap_or(Path::new(".")))?;
        return Ok(());
    }
    if let Command::Types {
        dir: Some(dir),
        out,
    } = &cli.command
    {
        return types::from_project(dir, out.as_deref());
    }
    let client = Client::new(
        connection.url.as_deref(),
        connection.token,
        &connection.data_dir,
        connection.environment,
        connection.yes,
    )?;
    let json = connection.json;
    match cli.command {
        Command::Serve { .. }
        | Command::Init { .. }
        | Command::Build { .. }
        | Command::Login { .. }
        | Command::Logout => unreachable!("handled above"),
        Command::Deploy { file, deploy } => {
            let file = match file {
                Some(file) => file,
                None => {
                    let out = build::output(Path::new("."), &manifest::project(Path::new("."))?);
                    anyhow::ensure!(
                        out.is_file(),
                        "no component to deploy: {} does not exist (run `aura build`, or pass the .wasm file)",
                        out.display()
                    );
                    out
                }
            };
            let plan = deploy.plan(&file)?;
            if let (Some(path), false) = (&plan.manifest, json) {
                eprintln!("using manifest {}", path.display());
            }
            let name = plan.name;
            let wasm = std::fs::read(&file)
                .map_err(|err| anyhow::anyhow!("reading {}: {err}", file.display()))?;
            for answer in collections::apply_all(&client, &plan.collections, false, false).await? {
                if !json {
                    eprintln!("collection {}", text(&answer["collection"]["name"]));
                }
            }
            let version = match unchanged(&client, &name, &wasm, &plan.config).await {
                Some(active) => {
                    if !json {
                        eprintln!(
                            "unchanged: the active version already has these bytes and settings"
                        );
                    }
                    active
                }
                None => {
                    let progress = spinner(
                        json,
                        format!("uploading and compiling {name} ({} KiB)", wasm.len() / 1024),
                    );
                    let version = client.deploy(&name, wasm, &plan.config).await;
                    progress.finish_and_clear();
                    version?
                }
            };
            for (schedule, spec) in &plan.schedules {
                let answer = client
                    .put_json(&format!("/api/admin/schedules/{schedule}"), spec)
                    .await?;
                if !json {
                    eprintln!(
                        "scheduled {schedule}: next run at {}",
                        text(&answer["next_run_at"])
                    );
                }
            }
            print(json, &version, |v| {
                format!(
                    "deployed {} version {} (sha256 {}, {} bytes{}); call it at {}/fn/{}",
                    v["function"].as_str().unwrap_or(&name),
                    v["version"],
                    v["hash"].as_str().map_or("", |h| &h[..12.min(h.len())]),
                    v["size"],
                    compile_note(&v["compile"]),
                    client.base(),
                    name
                )
            });
        }
        Command::Functions { command } => match command {
            FunctionsCommand::List => {
                let answer = client.get("/api/admin/functions").await?;
                print(json, &answer, |a| {
                    let mut table = Table::new(["NAME", ">ACTIVE", ">VERSIONS", "UPDATED"]);
                    for f in a["functions"].as_array().into_iter().flatten() {
                        table.row([
                            text(&f["name"]),
                            &f["active_version"].to_string(),
                            &f["versions"].to_string(),
                            text(&f["updated_at"]),
                        ]);
                    }
                    table.render()
                });
            }
            FunctionsCommand::Show { name } => {
                let answer = client.get(&format!("/api/admin/functions/{name}")).await?;
                print(json, &answer, |f| {
                    format!(
                        "{}: active version {} of {}, created {}, updated {}",
                        text(&f["name"]),
                        f["active_version"],
                        f["versions"],
                        text(&f["created_at"]),
                        text(&f["updated_at"])
                    )
                });
            }
            FunctionsCommand::Versions { name } => {
                let answer = client
                    .get(&format!("/api/admin/functions/{name}/versions"))
                    .await?;
                print(json, &answer, |a| {
                    let mut table =
                        Table::new([">VERSION", "ACTIVE", "SHA256", ">BYTES", "CREATED"]);
                    for v in a["versions"].as_array().into_iter().flatten() {
                        let hash = text(&v["hash"]);
                        table.row([
                            v["version"].to_string().as_str(),
                            if v["active"] == true { "*" } else { "" },
                            &hash[..12.min(hash.len())],
                            &v["size"].to_string(),
                            text(&v["created_at"]),
                        ]);
                    }
                    table.render()
                });
            }
            FunctionsCommand::Grants { name } => {
                let answer = client
                    .get(&format!("/api/admin/functions/{name}/versions"))
                    .await?;
                let active = answer["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["active"] == true)
                    .cloned()
                    .unwrap_or_default();
                print(json, &active["grants"], |g| {
                    let network: Vec<&str> = g["network"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|h| h.as_str())
                        .collect();
                    format!(
                        "{name} (version {}):\n  network: {}\n  sockets: {}",
                        active["version"],
                        if network.is_empty() {
                            "none".to_owned()
                        } else {
                            network.join(", ")
                        },
                        g["sockets"] == true
                    )
                });
            }
            FunctionsCommand::Rollback { name, to } => {
                let body = to.map_or(
                    Value::Null,
                    |version| serde_json::json!({ "version": version }),
                );
                let answer = client
                    .post_json(&format!("/api/admin/functions/{name}/rollback"), &body)
                    .await?;
                print(json, &answer, |v| {
                    format!("{name}: active version is now {}", v["version"])
                });
            }
            FunctionsCommand::Delete { name } => {
                client.confirm(&format!(
                    "delete function {name} with its versions and logs"
                ))?;
                client
                    .delete(&format!("/api/admin/functions/{name}"))
                    .await?;
                if !json {
                    println!("deleted {name}");
                }
            }
        },
        Command::Schedules { command } => schedules(&client, json, command).await?,
        Command::Collections { command } => collections::run(&client, json, command).await?,
        Command::Storage { command } => storage::run(&client, json, command).await?,
        Command::Secrets { command } => secrets::run(&client, json, command).await?,
        Command::Tokens { command } => tokens::run(&client, json, command).await?,
        Command::Backup { command } => backup::run(&client, json, command).await?,
        Command::Env { command } => env::run(&client, json, command).await?,
        Command::Push { dir } => project::push(&client, json, &dir).await?,
        Command::Pull { dir } => project::pull(&client, json, &dir).await?,
        Command::Types { out, .. } => types::from_server(&client, out.as_deref()).await?,
        Command::Dashboard => {
            let link = client
                .post_json("/api/admin/dashboard/links", &json!({}))
                .await?;
            let url = format!("{}{}", client.base(), text(&link["path"]));
            if json {
                println!("{}", json!({ "url": url, "expiresIn": link["expiresIn"] }));
            } else {
                println!("{url}");
                println!(
                    "(works once, for {} minutes)",
                    link["expiresIn"].as_u64().unwrap_or(0) / 60
                );
            }
        }
        Command::Snapshots => project::list_snapshots(&client, json).await?,
        Command::Rollback { snapshot } => project::rollback(&client, json, snapshot).await?,
        Command::Logs {
            name,
            follow,
            limit,
        } => {
            let logs = format!("/api/admin/functions/{name}/logs");
            let answer = client.get(&format!("{logs}?limit={limit}")).await?;
            let mut after = print_invocations(json, &answer);
            if follow {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let since = after.unwrap_or(0);
                    let answer = client
                        .get(&format!("{logs}?after={since}&limit=1000"))
                        .await?;
                    after = print_invocations(json, &answer).or(after);
                }
            }
        }
    }
    Ok(())
}

/// When `aura serve` prints a dashboard sign-in link.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SignInLink {
    Auto,
    Always,
    Never,
}

async fn schedules(client: &Client, json: bool, command: SchedulesCommand) -> anyhow::Result<()> {
    match command {
        SchedulesCommand::Add {
            name,
            cron,
            function,
            tz,
            payload,
            path,
            retries,
            overlap,
            missed,
        } => {
            let mut spec = serde_json::json!({ "cron": cron, "function": function });
            if let Some(payload) = payload {
                spec["payload"] = serde_json::from_str(&payload)
                    .map_err(|err| anyhow::anyhow!("--payload is not valid JSON: {err}"))?;
            }
            for (key, value) in [
                ("tz", tz),
                ("path", path),
                ("overlap", overlap),
                ("missed", missed),
            ] {
                if let Some(value) = value {
                    spec[key] = Value::String(value);
                }
            }
            if let Some(retries) = retries {
                spec["retries"] = retries.into();
            }
            let answer = client
                .put_json(&format!("/api/admin/schedules/{name}"), &spec)
                .await?;
            print(json, &answer, |s| {
                format!(
                    "scheduled {}: next run at {}",
                    text(&s["name"]),
                    text(&s["next_run_at"])
                )
            });
        }
        SchedulesCommand::List => {
            let answer = client.get("/api/admin/schedules").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["NAME", "CRON", "FUNCTION", "TZ", "STATE", "NEXT RUN"]);
                for s in a["schedules"].as_array().into_iter().flatten() {
                    table.row([
                        text(&s["name"]),
                        text(&s["cron"]),
                        text(&s["function"]),
                        text(&s["tz"]),
                        if s["paused"] == true {
                            "paused"
                        } else {
                            "active"
                        },
                        text(&s["next_run_at"]),
                    ]);
                }
                table.render()
            });
        }
        SchedulesCommand::Pause { name } => {
            let answer = client
                .post_json(&format!("/api/admin/schedules/{name}/pause"), &Value::Null)
                .await?;
            print(json, &answer, |s| format!("paused {}", text(&s["name"])));
        }
        SchedulesCommand::Resume { name } => {
            let answer = client
                .post_json(&format!("/api/admin/schedules/{name}/resume"), &Value::Null)
                .await?;
            print(json, &answer, |s| {
                format!(
                    "resumed {}: next run at {}",
                    text(&s["name"]),
                    text(&s["next_run_at"])
                )
            });
        }
        SchedulesCommand::RunNow { name } => {
            let answer = client
                .post_json(&format!("/api/admin/schedules/{name}/run"), &Value::Null)
                .await?;
            print(json, &answer, |_| format!("started a run of {name}"));
        }
        SchedulesCommand::Runs { name, limit } => {
            let answer = client
                .get(&format!("/api/admin/schedules/{name}/runs?limit={limit}"))
                .await?;
            print(json, &answer, |a| {
                let mut out = String::new();
                for r in a["runs"].as_array().into_iter().flatten() {
                    out += &format!(
                        "{} attempt {} {} {} ({:.1} ms){}\n",
                        text(&r["scheduled_for"]),
                        r["attempt"],
                        text(&r["status"]),
                        r["http_status"]
                            .as_i64()
                            .map_or("-".to_owned(), |s| s.to_string()),
                        r["duration_ms"].as_f64().unwrap_or(0.0),
                        r["error"]
                            .as_str()
                            .map_or(String::new(), |e| format!(": {e}"))
                    );
                }
                out.trim_end().to_owned()
            });
        }
        SchedulesCommand::Remove { name } => {
            client.confirm(&format!("remove schedule {name} and its history"))?;
            client
                .delete(&format!("/api/admin/schedules/{name}"))
                .await?;
            if !json {
                println!("removed {name}");
            }
        }
    }
    Ok(())
}

/// Prints invocation records; returns the last `seq` printed.
fn print_invocations(json: bool, answer: &Value) -> Option<i64> {
    let records = answer["invocations"].as_array()?;
    for r in records {
        if json {
            println!("{r}");
            continue;
        }
        let status = r["status"]
            .as_i64()
            .map_or("-".to_owned(), |s| s.to_string());
        println!(
            "{} {} v{} {} {} {} -> {} {} ({:.1} ms)",
            text(&r["started_at"]),
            text(&r["id"]),
            r["version"],
            text(&r["function"]),
            text(&r["method"]),
            text(&r["path"]),
            status,
            text(&r["outcome"]),
            r["duration_ms"].as_f64().unwrap_or(0.0)
        );
        if let Some(error) = r["error"].as_str() {
            println!("  error: {error}");
        }
        for (stream, key) in [("stdout", "stdout"), ("stderr", "stderr")] {
            for line in text(&r[key]).lines() {
                println!("  {stream}| {line}");
            }
        }
    }
    records.last().and_then(|r| r["seq"].as_i64())
}

/// The active version of `name` when it has exactly these bytes, limits
/// and grants (a deploy would only add an identical version).
async fn unchanged(
    client: &Client,
    name: &str,
    wasm: &[u8],
    config: &crate::functions::VersionConfig,
) -> Option<serde_json::Value> {
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(wasm));
    let versions = client
        .get(&format!("/api/admin/functions/{name}/versions"))
        .await
        .ok()?;
    let active = versions["versions"]
        .as_array()?
        .iter()
        .find(|v| v["active"] == true)?
        .clone();
    let same = active["hash"] == hash.as_str()
        && active["limits"] == serde_json::to_value(config.limits).ok()?
        && active["grants"] == serde_json::to_value(&config.grants).ok()?;
    same.then_some(active)
}

/// "; compiled in 0.4 s, optimized code follows" from a deploy's `compile`.
fn compile_note(compile: &Value) -> String {
    let seconds = compile["ms"].as_f64().unwrap_or(0.0) / 1000.0;
    match compile["code"].as_str() {
        Some("cached") => format!("; code loaded from the cache in {seconds:.2} s"),
        Some("optimized") => format!("; compiled in {seconds:.2} s"),
        Some("baseline") => format!(
            "; compiled for a quick start in {seconds:.2} s, optimized code follows in the background"
        ),
        Some("reused") => format!(
            "; compiled in {seconds:.2} s around the language engine's cached code, the whole component's follows in the background"
        ),
        _ => String::new(),
    }
}

/// A spinner on standard error for a long operation (hidden with `--json`
/// and when standard error is not a terminal).
fn spinner(json: bool, message: String) -> indicatif::ProgressBar {
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

fn print(json: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human(value));
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AURA_LOG").unwrap_or_else(|_| {
        // s3s logs every refused request as an error; the S3 server logs
        // outcomes itself (`storage::s3::logged`).
        tracing_subscriber::EnvFilter::new("info,wasmtime_cranelift=warn,cranelift=warn,s3s=off")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
