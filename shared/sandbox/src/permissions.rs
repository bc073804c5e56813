//! Application permissions: which of Graph's app roles each request needs.
//!
//! Every API page of Microsoft Graph v1.0 has a "Permissions" table; for the application
//! permission type it names the least privileged permission and the higher privileged ones that
//! also work. A request is allowed when the token's `roles` claim holds any of them; otherwise it
//! is 403 `Authorization_RequestDenied` `Insufficient privileges to complete the operation.`
//! (learn.microsoft.com/graph/resolve-auth-errors; learn.microsoft.com/graph/errors). The sources
//! are listed per rule below and in the README.

use axum::http::StatusCode;

use super::routes::{Req, Resp};
use super::token::percent_decode;

const USER_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const USER_WRITE: &[&str] = &["User.ReadWrite.All", "Directory.ReadWrite.All"];
const USER_DELETE: &[&str] = &["User.DeleteRestore.All", "User.ReadWrite.All"];
const USER_REVOKE: &[&str] = &[
    "User.RevokeSessions.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const LICENSE_ASSIGN: &[&str] = &[
    "LicenseAssignment.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const LICENSE_DETAILS: &[&str] = &[
    "LicenseAssignment.Read.All",
    "User.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const SKUS_READ: &[&str] = &[
    "LicenseAssignment.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Organization.Read.All",
    "Organization.ReadWrite.All",
];
const GROUP_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const MEMBER_WRITE: &[&str] = &[
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const MEMBER_OF: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "User.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const DOMAIN_READ: &[&str] = &[
    "Domain.Read.All",
    "Domain.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// The application permissions any one of which allows `method` on `segments` (the decoded path
/// under `/v1.0/`); `None` for a request no rule covers (routing then answers it).
pub(crate) fn accepted(method: &str, segments: &[&str]) -> Option<&'static [&'static str]> {
    let read = method == "GET";
    Some(match segments {
        // user-list, user-get, user-list-manager, directory-deleteditems-list/get
        ["users"] | ["users", _] | ["users", "$count"] if read => USER_READ,
        ["users", _, "manager"] | ["users", _, "manager", "$ref"] if read => USER_READ,
        ["directory", "deletedItems", ..] if read => USER_READ,
        // user-post-users, user-update, user-post-manager, user-delete-manager
        ["users"] | ["users", _, "manager", "$ref"] => USER_WRITE,
        ["users", _] if method == "DELETE" => USER_DELETE,
        ["users", _] => USER_WRITE,
        // directory-deleteditems-restore, directory-deleteditems-delete
        ["directory", "deletedItems", ..] => USER_DELETE,
        ["users", _, "revokeSignInSessions"] => USER_REVOKE,
        ["users", _, "assignLicense"] => LICENSE_ASSIGN,
        ["users", _, "licenseDetails"] => LICENSE_DETAILS,
        ["users", _, "memberOf"] => MEMBER_OF,
        ["subscribedSkus"] => SKUS_READ,
        ["groups", ..] if read => GROUP_READ,
        // group-post-members, group-delete-members, group-update (members@odata.bind)
        ["groups", ..] => MEMBER_WRITE,
        ["domains", ..] => DOMAIN_READ,
        _ => return None,
    })
}

/// 403 `Authorization_RequestDenied` when none of the permissions the request accepts is in
/// `roles`.
pub(crate) fn check(req: &Req, roles: &[String]) -> Result<(), Resp> {
    let segments: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match accepted(req.method.as_str(), &segments) {
        Some(accepted) if !accepted.iter().any(|p| roles.iter().any(|r| r == p)) => {
            Err(Resp::error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_names_its_permissions() {
        assert_eq!(accepted("GET", &["users"]), Some(USER_READ));
        assert_eq!(accepted("POST", &["users"]), Some(USER_WRITE));
        assert_eq!(accepted("DELETE", &["users", "u"]), Some(USER_DELETE));
        assert_eq!(
            accepted("POST", &["groups", "g", "members", "$ref"]),
            Some(MEMBER_WRITE)
        );
        assert_eq!(accepted("GET", &["groups", "g"]), Some(GROUP_READ));
        assert_eq!(accepted("GET", &["subscribedSkus"]), Some(SKUS_READ));
        assert!(!SKUS_READ.contains(&"LicenseAssignment.ReadWrite.All"));
        assert_eq!(accepted("GET", &["nope"]), None);
    }
}
