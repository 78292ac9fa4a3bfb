//! The Remote Workers API (`google.devtools.remoteworkers.v1test2.Bots`), the protocol between a
//! REAPI server that schedules actions (BuildGrid) and the bots that run them.
//!
//! No crate on crates.io ships these messages, so they are written here by hand as prost
//! messages, from the API's published interface (the message and field numbers of
//! `bots.proto` and `worker.proto`); only the fields a bot needs are declared (protobuf skips
//! unknown fields, so the server's extra fields are harmless). The client is a plain tonic
//! unary client over the same codec the generated REAPI clients use.
use bazel_remote_apis::google::protobuf::{Any, Timestamp};
use bazel_remote_apis::google::rpc::Status;
use tonic::codegen::http::uri::PathAndQuery;

use crate::connection::Connection;

/// `BotStatus.OK`: the bot accepts leases.
pub const BOT_STATUS_OK: i32 = 1;
/// `LeaseState.PENDING`: offered by the server.
pub const LEASE_PENDING: i32 = 1;
/// `LeaseState.ACTIVE`: accepted by the bot.
pub const LEASE_ACTIVE: i32 = 2;
/// `LeaseState.COMPLETED`: finished by the bot (its `status` and `result` are set).
pub const LEASE_COMPLETED: i32 = 4;
/// `LeaseState.CANCELLED`: withdrawn by the server.
pub const LEASE_CANCELLED: i32 = 5;

/// A bot's session with the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BotSession {
    /// Assigned by the server in `CreateBotSession`.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub bot_id: String,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(message, optional, tag = "4")]
    pub worker: Option<Worker>,
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<Lease>,
    #[prost(message, optional, tag = "6")]
    pub expire_time: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub version: String,
}

/// One unit of work offered to a bot.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    #[prost(string, tag = "7")]
    pub id: String,
    /// What to run: a REAPI `Action` or the `Digest` of one.
    #[prost(message, optional, tag = "8")]
    pub payload: Option<Any>,
    /// What came of it: a REAPI `ActionResult`.
    #[prost(message, optional, tag = "9")]
    pub result: Option<Any>,
    #[prost(int32, tag = "2")]
    pub state: i32,
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "5")]
    pub expire_time: Option<Timestamp>,
}

/// The machine a bot runs on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Worker {
    /// The first device is the one that runs the commands.
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<Device>,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
    #[prost(message, repeated, tag = "3")]
    pub configs: Vec<Property>,
}

/// One device of a worker and the properties actions are matched against.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Device {
    #[prost(string, tag = "1")]
    pub handle: String,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
}

/// A key and a value (`Worker.Property`, `Worker.Config` and `Device.Property` share this
/// shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Property {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateBotSessionRequest {
    /// The instance name.
    #[prost(string, tag = "1")]
    pub parent: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBotSessionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

/// A client of the `Bots` service.
#[derive(Clone)]
pub struct BotsClient {
    inner: tonic::client::Grpc<Connection>,
}

impl BotsClient {
    pub fn new(channel: Connection) -> BotsClient {
        BotsClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn create_bot_session(
        &mut self,
        request: CreateBotSessionRequest,
    ) -> Result<BotSession, tonic::Status> {
        self.unary(
            "/google.devtools.remoteworkers.v1test2.Bots/CreateBotSession",
            tonic::Request::new(request),
        )
        .await
    }

    /// Updates the session; the server may hold the call until it has a lease to offer, at
    /// most `timeout`.
    pub async fn update_bot_session(
        &mut self,
        request: UpdateBotSessionRequest,
        timeout: std::time::Duration,
    ) -> Result<BotSession, tonic::Status> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(timeout);
        self.unary(
            "/google.devtools.remoteworkers.v1test2.Bots/UpdateBotSession",
            request,
        )
        .await
    }

    async fn unary<Request: prost::Message + 'static>(
        &mut self,
        path: &'static str,
        request: tonic::Request<Request>,
    ) -> Result<BotSession, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|error| tonic::Status::unavailable(format!("bots service: {error}")))?;
        let codec = tonic_prost::ProstCodec::<Request, BotSession>::default();
        let response = self
            .inner
            .unary(request, PathAndQuery::from_static(path), codec)
            .await?;
        Ok(response.into_inner())
    }
}
