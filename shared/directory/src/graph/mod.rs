//! Microsoft Graph client: token, requests with throttling and retries, `$batch`, user operations.
