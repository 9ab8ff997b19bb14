//! `/app`, `/app/installations*`, `/installation/repositories`, `/repos/{o}/{r}/installation`.

use rand::Rng;
use serde_json::{Value, json};

use super::super::state::{State, Token, now, ts};
use super::{Ctx, HandlerResult, Resp, paginate};

pub fn get_authenticated(state: &mut State) -> HandlerResult {
    Ok(Resp::ok(state.app_json()))
}

pub fn list_installations(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let ids: Vec<u64> = state.installations.keys().copied().collect();
    let items = ids
        .into_iter()
        .map(|id| state.installation_json(id))
        .collect();
    Ok(super::paged(state, ctx, items))
}

fn installation_id(state: &State, ctx: &Ctx) -> Result<u64, Resp> {
    ctx.param_u64("installation_id")
        .filter(|id| state.installations.contains_key(id))
        .ok_or_else(Resp::not_found)
}

pub fn get_installation(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = installation_id(state, ctx)?;
    Ok(Resp::ok(state.installation_json(id)))
}

pub fn create_token(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = installation_id(state, ctx)?;
    let inst = state.installations[&id].clone();
    let mut permissions = inst.permissions.clone();
    // A token may be narrowed to fewer permissions, never widened.
    if let Some(asked) = ctx.body.get("permissions").and_then(Value::as_object) {
        permissions.clear();
        for (k, v) in asked {
            let level = v.as_str().unwrap_or_default();
            if !super::has_permission(&inst.permissions, k, level) {
                return Err(Resp::error(
                    422,
                    "The permissions requested are not granted to this installation.",
                ));
            }
            permissions.insert(k.clone(), level.to_string());
        }
    }
    let token: String = {
        let mut rng = rand::rng();
        (0..36)
            .map(|_| {
                char::from(
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        [rng.random_range(0..62)],
                )
            })
            .collect()
    };
    let token = format!("ghs_{token}");
    let expires_at = now() + state.token_lifetime;
    state.tokens.insert(
        token.clone(),
        Token {
            installation: id,
            expires_at,
            permissions: permissions.clone(),
        },
    );
    Ok(Resp::created(json!({
        "token": token, "expires_at": ts(expires_at), "permissions": permissions, "repository_selection": "selected",
    })))
}

pub fn get_repo_installation(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let id = state
        .repo(&ctx.repo)
        .map(|r| r.installation)
        .ok_or_else(Resp::not_found)?;
    Ok(Resp::ok(state.installation_json(id)))
}

pub fn list_installation_repos(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let inst = ctx.installation.ok_or_else(Resp::not_found)?;
    let names: Vec<String> = state
        .repos
        .values()
        .filter(|r| r.installation == inst)
        .map(|r| r.full_name())
        .collect();
    let total = names.len();
    let items = names.iter().map(|n| state.repo_json(n)).collect();
    let (page, link) = paginate(state, ctx, items);
    let mut r = Resp::ok(
        json!({"total_count": total, "repository_selection": "selected", "repositories": page}),
    );
    if let Some(l) = link {
        r = r.header("link", l);
    }
    Ok(r)
}

/// `POST /app-manifests/{code}/conversions`: the App the manifest described, with its
/// secrets, once per code (GitHub's codes are single-use and expire after an hour). The
/// fake has one App, so the manifest names it and the fake's own key is its key.
pub fn create_from_manifest(state: &mut State, ctx: &Ctx) -> HandlerResult {
    let code = ctx.param("code").to_string();
    let manifest = state
        .manifest_codes
        .remove(&code)
        .ok_or_else(Resp::not_found)?;
    if let Some(name) = manifest.get("name").and_then(Value::as_str) {
        state.app.name = name.to_string();
    }
    let mut app = state.app_json();
    let secret: String = {
        let mut rng = rand::rng();
        (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    app["client_id"] = json!(format!("Iv1.{:016x}", state.app.id));
    app["client_secret"] = json!(format!("{secret}{secret}"));
    app["webhook_secret"] = json!(secret);
    app["pem"] = json!(super::super::auth::app_key().private_pem.clone());
    if let Some(perms) = manifest.get("default_permissions") {
        app["permissions"] = perms.clone();
    }
    if let Some(events) = manifest.get("default_events") {
        app["events"] = events.clone();
    }
    state.app_webhook_secret = Some(secret);
    Ok(Resp::created(app))
}
