//! The names through which the module and its app agree: where the port, the pairing token
//! and the path base go. `h2lab` is the lab's own (`sut app` reads it); `ancm` is the
//! ASP.NET Core Module's, so an ASP.NET Core app runs behind `sut host` as behind IIS.

use http::HeaderName;

use crate::app::PAIRING_TOKEN_HEADER;

/// Which names the module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModuleContract {
    /// `H2LAB_APP_PORT`, `H2LAB_PAIRING_TOKEN`, header `x-h2lab-pairing-token`; the path
    /// base is stripped and sent as X-Forwarded-Prefix.
    H2lab,
    /// `ASPNETCORE_PORT`, `ASPNETCORE_TOKEN`, `ASPNETCORE_APPL_PATH`, header
    /// `MS-ASPNETCORE-TOKEN`; the path base stays in the path (the app's IIS integration
    /// strips it, as behind IIS).
    Ancm,
}

/// Environment variable of the app's port under the h2lab contract.
pub const H2LAB_PORT_ENV: &str = "H2LAB_APP_PORT";
/// Environment variable of the pairing token under the h2lab contract.
pub const H2LAB_TOKEN_ENV: &str = "H2LAB_PAIRING_TOKEN";

impl ModuleContract {
    /// The variable that tells the app its port.
    pub fn port_env(self) -> &'static str {
        match self {
            ModuleContract::H2lab => H2LAB_PORT_ENV,
            ModuleContract::Ancm => "ASPNETCORE_PORT",
        }
    }

    /// The variable that holds the per-start pairing token.
    pub fn token_env(self) -> &'static str {
        match self {
            ModuleContract::H2lab => H2LAB_TOKEN_ENV,
            ModuleContract::Ancm => "ASPNETCORE_TOKEN",
        }
    }

    /// The variable that tells the app its path base, if the contract has one.
    pub fn path_env(self) -> Option<&'static str> {
        match self {
            ModuleContract::H2lab => None,
            ModuleContract::Ancm => Some("ASPNETCORE_APPL_PATH"),
        }
    }

    /// The header that carries the token on every forwarded request.
    pub fn token_header(self) -> HeaderName {
        match self {
            ModuleContract::H2lab => HeaderName::from_static(PAIRING_TOKEN_HEADER),
            ModuleContract::Ancm => HeaderName::from_static("ms-aspnetcore-token"),
        }
    }

    /// Whether the module strips the path base before forwarding.
    pub fn strips_path_base(self) -> bool {
        self == ModuleContract::H2lab
    }

    /// The environment one app start gets: port, token and path base.
    pub fn env(self, port: u16, token: &str, path_base: Option<&str>) -> Vec<(String, String)> {
        let mut env = vec![
            (self.port_env().to_string(), port.to_string()),
            (self.token_env().to_string(), token.to_string()),
        ];
        if let Some(name) = self.path_env() {
            env.push((name.to_string(), path_base.unwrap_or("/").to_string()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancm_names_are_the_aspnet_core_modules() {
        let env = ModuleContract::Ancm.env(5000, "t0k", Some("/app"));
        assert_eq!(
            env,
            [
                ("ASPNETCORE_PORT".to_string(), "5000".to_string()),
                ("ASPNETCORE_TOKEN".into(), "t0k".into()),
                ("ASPNETCORE_APPL_PATH".into(), "/app".into()),
            ]
        );
        assert_eq!(ModuleContract::Ancm.token_header(), "ms-aspnetcore-token");
        assert!(!ModuleContract::Ancm.strips_path_base());
        let env = ModuleContract::H2lab.env(5000, "t0k", Some("/app"));
        assert_eq!(env.len(), 2, "the path base goes in X-Forwarded-Prefix");
        assert_eq!(ModuleContract::H2lab.token_header(), PAIRING_TOKEN_HEADER);
    }
}
