//! A hostile identity provider for tests: an OpenID Connect provider (and
//! GitHub-, Discord- and Apple-style endpoints) on a free loopback port,
//! which signs in whoever the test names and can be told to spoil the next
//! ID token in one way: another issuer, audience or nonce, an expired token,
//! `alg: none`, HS256 keyed with its public key, a wrong `at_hash`, a key
//! it does not publish yet.
//!
//! `/authorize` signs the person in at once: it answers `303` to the
//! redirect URI (or, for `response_mode=form_post`, `200` with the fields a
//! browser would post). `/token` checks the code, the redirect URI and the
//! PKCE verifier as a real provider does.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How to spoil the next ID token.
#[derive(Debug, Clone, PartialEq)]
pub enum Spoil {
    /// Another `iss`.
    Issuer(String),
    /// This `aud`.
    Audience(Value),
    /// Another `nonce`.
    Nonce(String),
    /// `exp` this many seconds ago.
    Expired(i64),
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256, keyed with the provider's public key.
    Hs256WithPublicKey,
    /// An `at_hash` of another token.
    AtHash,
    /// `azp` naming another client.
    AuthorizedParty(String),
}

/// Who signs in next, and what the provider says of them.
#[derive(Debug, Clone)]
pub struct Person {
    /// `sub` (and GitHub's/Discord's `id`).
    pub subject: String,
    /// E-mail.
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub email_verified: bool,
    /// Name.
    pub name: Option<String>,
}

impl Person {
    /// Someone with a verified e-mail.
    pub fn new(subject: &str, email: &str) -> Self {
        Self {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            name: Some("Test Person".into()),
        }
    }
}

struct Grant {
    person: Person,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
    client_id: String,
}

struct Inner {
    issuer: String,
    keys: Vec<(String, SigningKey)>,
    /// How many keys (from the first) the JWKS publishes.
    published: usize,
    /// The key that signs.
    signing: usize,
    person: Person,
    spoil: Option<Spoil>,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Person>,
    jwks_fetches: usize,
    issued: Vec<String>,
    token_requests: Vec<HashMap<String, String>>,
    /// The Apple-style client secret's verifying key, when checked.
    apple_key: Option<VerifyingKey>,
    /// What `iat` and `exp` are counted from.
    clock: Arc<dyn sesame_core::Clock>,
}

/// The provider; it stops when dropped.
pub struct StubIdp {
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("a P-256 key")
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": B64.encode(point.x().expect("x")),
        "y": B64.encode(point.y().expect("y")),
    })
}

fn random() -> String {
    let mut bytes = [0u8; 24];
    getrandom_fill(&mut bytes);
    B64.encode(bytes)
}

fn getrandom_fill(bytes: &mut [u8]) {
    use p256::elliptic_curve::rand_core::{OsRng, RngCore};
    OsRng.fill_bytes(bytes);
}

/// The left half of SHA-256, base64url: `at_hash`.
pub fn half_hash(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    B64.encode(&digest[..16])
}

impl StubIdp {
    /// Starts on a free port, signing in `person` until told otherwise.
    pub async fn start(person: Person) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            keys: vec![
                ("key-1".into(), key(1)),
                ("key-2".into(), key(2)),
                ("key-3".into(), key(3)),
            ],
            published: 1,
            signing: 0,
            person,
            spoil: None,
            grants: HashMap::new(),
            tokens: HashMap::new(),
            jwks_fetches: 0,
            issued: Vec::new(),
            token_requests: Vec::new(),
            apple_key: None,
            clock: Arc::new(sesame_core::SystemClock),
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/connect/qrconnect", get(wechat_authorize))
            .route("/sns/oauth2/access_token", get(wechat_token))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            issuer,
            inner,
            task,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().expect("state"))
    }

    /// Counts `iat` and `exp` from `clock` (a test's manual clock), so that
    /// what the relying party compares them with moves only with it.
    pub fn use_clock(&self, clock: Arc<dyn sesame_core::Clock>) {
        self.with(|i| i.clock = clock);
    }

    /// Signs `person` in from now on.
    pub fn sign_in_as(&self, person: Person) {
        self.with(|i| i.person = person);
    }

    /// Spoils the next ID token.
    pub fn spoil_next(&self, spoil: Spoil) {
        self.with(|i| i.spoil = Some(spoil));
    }

    /// Signs with the next key, published from now on too (a rotation).
    pub fn rotate_key(&self) {
        self.with(|i| {
            i.signing += 1;
            i.published = i.published.max(i.signing + 1);
        });
    }

    /// Signs with the next key without publishing it.
    pub fn sign_with_unpublished_key(&self) {
        self.with(|i| i.signing += 1);
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.with(|i| i.jwks_fetches)
    }

    /// Every access and refresh token issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|i| i.issued.clone())
    }

    /// The form fields of every token request so far.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.with(|i| i.token_requests.clone())
    }

    /// Refuses token requests whose client secret is not an ES256 JWT
    /// signed by `key` (Sign in with Apple's client authentication).
    pub fn expect_apple_client_secret(&self, key: VerifyingKey) {
        self.with(|i| i.apple_key = Some(key));
    }
}

async fn discovery(State(inner): State<Arc<Mutex<Inner>>>) -> Json<Value> {
    let issuer = inner.lock().expect("state").issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/user"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "HS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

fn query(raw: Option<String>) -> HashMap<String, String> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default()
}

async fn authorize(State(inner): State<Arc<Mutex<Inner>>>, RawQuery(raw): RawQuery) -> Response {
    let q = query(raw);
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("code_challenge_method") != "S256" || field("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "S256 and code only").into_response();
    }
    let code = random();
    let mut i = inner.lock().expect("state");
    let grant = Grant {
        person: i.person.clone(),
        nonce: q.get("nonce").cloned(),
        challenge: field("code_challenge"),
        redirect_uri: field("redirect_uri"),
        client_id: field("client_id"),
    };
    i.grants.insert(code.clone(), grant);
    let issuer = i.issuer.clone();
    if field("response_mode") == "form_post" {
        let user = json!({"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": "ada@example.test"});
        return Json(json!({
            "action": field("redirect_uri"),
            "fields": {"code": code, "state": field("state"), "user": user.to_string()},
        }))
        .into_response();
    }
    let mut back = reqwest::Url::parse(&field("redirect_uri")).expect("a redirect URI");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"))
        .append_pair("iss", &issuer);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, back.to_string())],
    )
        .into_response()
}

/// WeChat's authorization page: `appid`, no PKCE; the code comes back with
/// the state.
async fn wechat_authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw);
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let code = random();
    let mut i = inner.lock().expect("state");
    let grant = Grant {
        person: i.person.clone(),
        nonce: None,
        challenge: String::new(),
        redirect_uri: field("redirect_uri"),
        client_id: field("appid"),
    };
    i.grants.insert(code.clone(), grant);
    let mut back = reqwest::Url::parse(&field("redirect_uri")).expect("a redirect URI");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, back.to_string())],
    )
        .into_response()
}

/// WeChat's token endpoint: a GET with `appid`, `secret` and `code`; errors
/// are `200` with `errcode`. The person's `openid` is the subject with
/// `-openid` appended, the `unionid` the subject.
async fn wechat_token(State(inner): State<Arc<Mutex<Inner>>>, RawQuery(raw): RawQuery) -> Response {
    let q = query(raw);
    let mut i = inner.lock().expect("state");
    i.token_requests.push(q.clone());
    let grant = q.get("code").and_then(|c| i.grants.remove(c));
    let Some(grant) = grant.filter(|g| q.get("appid") == Some(&g.client_id)) else {
        return Json(json!({"errcode": 40029, "errmsg": "invalid code"})).into_response();
    };
    if q.get("secret").map(String::as_str) != Some("stub-secret") {
        return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"})).into_response();
    }
    let access_token = random();
    i.issued.push(access_token.clone());
    Json(json!({
        "access_token": access_token,
        "expires_in": 7200,
        "refresh_token": random(),
        "openid": format!("{}-openid", grant.person.subject),
        "unionid": grant.person.subject,
        "scope": "snsapi_login",
    }))
    .into_response()
}

fn sign_es256(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

fn id_token(i: &mut Inner, grant: &Grant, access_token: &str) -> String {
    use hmac::Mac as _;
    let now = i.clock.now().unix_timestamp();
    let spoil = i.spoil.take();
    let mut claims = json!({
        "iss": i.issuer,
        "sub": grant.person.subject,
        "aud": grant.client_id,
        "iat": now,
        "exp": now + 300,
        "at_hash": half_hash(access_token),
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Some(email) = &grant.person.email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(grant.person.email_verified);
    }
    if let Some(name) = &grant.person.name {
        claims["name"] = json!(name);
    }
    match &spoil {
        Some(Spoil::Issuer(iss)) => claims["iss"] = json!(iss),
        Some(Spoil::Audience(aud)) => claims["aud"] = aud.clone(),
        Some(Spoil::Nonce(n)) => claims["nonce"] = json!(n),
        Some(Spoil::Expired(ago)) => {
            claims["exp"] = json!(now - ago);
            claims["iat"] = json!(now - ago - 300);
        }
        Some(Spoil::AtHash) => claims["at_hash"] = json!(half_hash("another token")),
        Some(Spoil::AuthorizedParty(azp)) => claims["azp"] = json!(azp),
        _ => {}
    }
    let (kid, key) = i.keys[i.signing].clone();
    match spoil {
        Some(Spoil::AlgNone) => format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
            B64.encode(claims.to_string())
        ),
        Some(Spoil::Hs256WithPublicKey) => {
            let public = jwk(&kid, &key).to_string();
            let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
            let input = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public.as_bytes())
                .expect("any key length");
            mac.update(input.as_bytes());
            format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
        }
        _ => sign_es256(&key, &kid, &claims),
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}

fn verify_apple_secret(key: &VerifyingKey, jwt: &str) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return false;
    };
    let Ok(sig) = B64.decode(signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig) else {
        return false;
    };
    let header: Value = B64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or_default();
    header["alg"] == "ES256"
        && claims.len() > 2
        && key
            .verify(format!("{}.{claims}", parts[0]).as_bytes(), &sig)
            .is_ok()
}

async fn token(State(inner): State<Arc<Mutex<Inner>>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let mut i = inner.lock().expect("state");
    i.token_requests.push(form.clone());
    if let Some(key) = &i.apple_key
        && !form
            .get("client_secret")
            .is_some_and(|s| verify_apple_secret(key, s))
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(grant) = form.get("code").and_then(|c| i.grants.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = B64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge || form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let access_token = random();
    let refresh_token = format!("refresh-{}", random());
    i.tokens.insert(access_token.clone(), grant.person.clone());
    i.issued
        .extend([access_token.clone(), refresh_token.clone()]);
    let id_token = id_token(&mut i, &grant, &access_token);
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh_token,
        "id_token": id_token,
    }))
    .into_response()
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Json<Value> {
    let mut i = inner.lock().expect("state");
    i.jwks_fetches += 1;
    let keys: Vec<Value> = i.keys[..i.published]
        .iter()
        .map(|(kid, key)| jwk(kid, key))
        .collect();
    Json(json!({ "keys": keys }))
}

fn bearer_person(inner: &Arc<Mutex<Inner>>, headers: &HeaderMap) -> Option<Person> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    inner.lock().expect("state").tokens.get(token).cloned()
}

/// GitHub's `/user` and Discord's `/users/@me` in one: a numeric `id`
/// where the subject is digits, `verified` for Discord.
async fn user(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let Some(p) = bearer_person(&inner, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let id = p
        .subject
        .parse::<u64>()
        .map_or_else(|_| json!(p.subject), |n| json!(n));
    Json(json!({
        "id": id,
        "login": "octo",
        "username": "octo",
        "name": p.name,
        "global_name": p.name,
        "email": p.email,
        "verified": p.email_verified,
    }))
    .into_response()
}

/// GitHub's `/user/emails`: the primary address, verified as the person is,
/// and another verified one that is not primary.
async fn emails(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let Some(p) = bearer_person(&inner, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let mut list =
        vec![json!({"email": "secondary@example.test", "primary": false, "verified": true})];
    if let Some(email) = p.email {
        list.push(json!({"email": email, "primary": true, "verified": p.email_verified}));
    }
    Json(Value::Array(list)).into_response()
}

/// Where the app waits for the person to come back.
pub const RETURN_TO: &str = "https://app.example.test/signed-in";
/// The client id the stub issues tokens to.
pub const CLIENT_ID: &str = "sesame-client";

/// A connection `name` to the stub at `issuer` (private addresses allowed).
pub fn connection(name: &str, issuer: &str) -> sesame::federation_config::ConnectionConfig {
    let endpoint = |path: &str| {
        let path = match (name, path) {
            ("wechat", "/authorize") => "/connect/qrconnect",
            ("wechat", "/token") => "/sns/oauth2/access_token",
            _ => path,
        };
        (!name.starts_with("oidc:") && name != "apple" && name != "google")
            .then(|| format!("{issuer}{path}"))
    };
    sesame::federation_config::ConnectionConfig {
        name: name.into(),
        client_secret: Some("stub-secret".to_owned().into()),
        settings: sesame_federation::ConnectionSettings {
            client_id: CLIENT_ID.into(),
            return_to: vec![RETURN_TO.into()],
            allow_private_network: true,
            issuer: (name.starts_with("oidc:") || name == "apple" || name == "google")
                .then(|| issuer.to_owned()),
            authorization_url: endpoint("/authorize"),
            token_url: endpoint("/token"),
            userinfo_url: endpoint("/user"),
            emails_url: endpoint("/user/emails"),
            ..Default::default()
        },
    }
}

/// A PKCE pair of the app's: (verifier, S256 challenge).
pub fn app_pkce() -> (String, String) {
    let verifier = format!("{}{}", random(), random());
    let challenge = B64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A browser: keeps no cookies and follows no redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A flow begun: the begin response's fields and the app's verifier.
#[derive(Debug, Clone)]
pub struct Begun {
    /// `flow_id`.
    pub flow_id: String,
    /// `authorization_url`.
    pub authorization_url: String,
    /// The app's PKCE verifier.
    pub verifier: String,
}

/// `POST /v1/federation/{name}/begin`, as `token` when given, for `intent`.
pub async fn begin(app: &crate::TestApp, name: &str, token: Option<&str>, intent: &str) -> Begun {
    let (verifier, challenge) = app_pkce();
    let body = json!({"intent": intent, "return_to": RETURN_TO, "app_code_challenge": challenge});
    let mut req = app
        .client
        .post(app.url(&format!("/v1/federation/{name}/begin")))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = app.send(req).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    Begun {
        flow_id: resp.body["flow_id"].as_str().expect("flow_id").into(),
        authorization_url: resp.body["authorization_url"]
            .as_str()
            .expect("authorization_url")
            .into(),
        verifier,
    }
}

/// The query of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

/// Where a `303` points.
pub fn location(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), 303, "a redirect");
    resp.headers()[header::LOCATION]
        .to_str()
        .expect("a location")
        .to_owned()
}

/// Visits the stub's authorization URL; returns Sesame's callback URL.
pub async fn authorize_at_stub(url: &str) -> String {
    let resp = browser().get(url).send().await.expect("authorize");
    location(&resp)
}

/// Calls Sesame's callback URL as the browser would; returns the query of
/// where it sends the browser (the app's `return_to`).
pub async fn callback(callback_url: &str) -> HashMap<String, String> {
    let resp = browser().get(callback_url).send().await.expect("callback");
    let back = location(&resp);
    assert!(back.starts_with(RETURN_TO), "{back}");
    query_of(&back)
}

/// `POST /v1/federation/exchange`.
pub async fn exchange(
    app: &crate::TestApp,
    flow_id: &str,
    login_code: &str,
    verifier: &str,
) -> crate::Resp {
    let body = json!({"flow_id": flow_id, "login_code": login_code, "app_code_verifier": verifier});
    app.post("/v1/federation/exchange", &body).await
}

/// A server with `connections` (see [`connection`]) and defaults otherwise.
pub async fn app_with(
    connections: Vec<sesame::federation_config::ConnectionConfig>,
) -> crate::TestApp {
    crate::TestApp::builder()
        .config(|c| c.federation.connections = connections)
        .spawn()
        .await
}

/// A whole sign-in through the stub with connection `name`.
pub async fn sign_in(app: &crate::TestApp, name: &str) -> crate::Resp {
    let begun = begin(app, name, None, "sign_in").await;
    let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
    let code = back
        .get("login_code")
        .unwrap_or_else(|| panic!("no login code: {back:?}"));
    exchange(app, &begun.flow_id, code, &begun.verifier).await
}
