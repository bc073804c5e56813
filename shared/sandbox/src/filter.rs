//! The OData `$filter` subset Graph supports on users, parsed into a tree and evaluated against
//! a user's properties.
//!
//! Supported: `prop eq|ne literal`, `prop in ('a','b')`, `startswith(prop,'x')`,
//! `endswith(prop,'x')`, `coll/any(v:v eq 'x')` (and `startswith`/`endswith`/`in` on `v`),
//! `and`, `or`, `not`, parentheses. Literals: `'string'` (a `'` doubled inside), `true`, `false`,
//! `null`, and unquoted date-times for `employeeHireDate`/`employeeLeaveDateTime` (with
//! `gt`/`ge`/`lt`/`le`).
//!
//! As in Graph, `ne`, `not`, `endswith`, `eq null` and the properties Graph only filters in an
//! "advanced query" need `ConsistencyLevel: eventual` and `$count=true`; [`Filter::advanced`]
//! names what needed it. String comparisons ignore case.
//!
//! A filter that does not parse is an error — never "no filter".

use serde_json::{Map, Value};

use super::directory::Indexed;

/// Why a filter was refused: Graph's error `code` and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl FilterError {
    fn syntax(message: impl Into<String>) -> Self {
        Self {
            code: "BadRequest",
            message: format!("Invalid filter clause: {}", message.into()),
        }
    }

    fn unsupported_property(property: &str, resource: Resource) -> Self {
        Self {
            code: "Request_UnsupportedQuery",
            message: format!(
                "Unsupported or invalid query filter clause specified for property '{property}' of resource '{}'.",
                resource.name()
            ),
        }
    }
}

/// The resource a filter is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    User,
    Group,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::User => "User",
            Resource::Group => "Group",
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    expr: Expr,
    /// What made this an advanced query (needs `ConsistencyLevel: eventual` + `$count=true`).
    pub(crate) advanced: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Literal),
    In(Operand, Vec<Literal>),
    StartsWith(Operand, String),
    EndsWith(Operand, String),
    Any(String, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A property path (`employeeOrgData/costCenter` is two segments).
    Property(Vec<String>),
    /// The element of a lambda (`p` in `proxyAddresses/any(p:p eq 'x')`).
    Element,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Null,
    DateTime(jiff::Timestamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Str,
    Bool,
    DateTime,
}

struct PropInfo {
    ty: Type,
    /// Filterable without advanced query parameters.
    default: bool,
}

fn property_info(path: &str, resource: Resource) -> Option<PropInfo> {
    if resource == Resource::Group {
        return matches!(path, "id" | "displayName" | "mailNickname").then_some(PropInfo {
            ty: Type::Str,
            default: true,
        });
    }
    let (ty, default) = match path {
        "id"
        | "employeeId"
        | "userPrincipalName"
        | "mail"
        | "displayName"
        | "givenName"
        | "surname"
        | "mailNickname"
        | "usageLocation"
        | "jobTitle"
        | "department"
        | "city"
        | "country"
        | "state"
        | "userType"
        | "onPremisesImmutableId"
        | "preferredLanguage"
        | "postalCode"
        | "streetAddress" => (Type::Str, true),
        "accountEnabled" => (Type::Bool, true),
        "employeeType"
        | "companyName"
        | "officeLocation"
        | "mobilePhone"
        | "employeeOrgData/division"
        | "employeeOrgData/costCenter" => (Type::Str, false),
        "employeeHireDate" | "employeeLeaveDateTime" => (Type::DateTime, false),
        _ if path
            .strip_prefix("onPremisesExtensionAttributes/extensionAttribute")
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=15).contains(&n)) =>
        {
            (Type::Str, false)
        }
        _ if super::schema::is_extension(path) => (Type::Str, true),
        _ => return None,
    };
    Some(PropInfo { ty, default })
}

/// Collections a lambda (`any`) may range over.
fn is_collection(path: &str) -> bool {
    matches!(
        path,
        "proxyAddresses" | "otherMails" | "imAddresses" | "businessPhones"
    )
}

/// Properties `endswith` works on (advanced query only).
fn endswith_allowed(path: &str) -> bool {
    matches!(
        path,
        "mail" | "userPrincipalName" | "otherMails" | "proxyAddresses"
    )
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// An unquoted literal starting with a digit or sign (a date-time, a number, a bare GUID).
    Bare(String),
    LParen,
    RParen,
    Comma,
    Colon,
}

fn describe(tok: Option<&Tok>) -> String {
    match tok {
        None => "end of filter".to_owned(),
        Some(Tok::Ident(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("string '{s}'"),
        Some(Tok::Bare(s)) => format!("'{s}'"),
        Some(Tok::LParen) => "'('".to_owned(),
        Some(Tok::RParen) => "')'".to_owned(),
        Some(Tok::Comma) => "','".to_owned(),
        Some(Tok::Colon) => "':'".to_owned(),
    }
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            ':' => {
                out.push((start, Tok::Colon));
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError::syntax(format!(
                                "unterminated string literal starting at position {start}"
                            )));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((start, Tok::Str(s)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '/' | '.'))
                {
                    i += 1;
                }
                out.push((start, Tok::Ident(chars[start..i].iter().collect())));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], ':' | '.' | '-' | '+'))
                {
                    i += 1;
                }
                out.push((start, Tok::Bare(chars[start..i].iter().collect())));
            }
            other => {
                return Err(FilterError::syntax(format!(
                    "unexpected character '{other}' at position {start}"
                )));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    /// The lambda variable in scope, if any.
    var: Option<String>,
    advanced: Option<String>,
    resource: Resource,
}

/// Parses a `$filter` value.
pub(crate) fn parse(input: &str, resource: Resource) -> Result<Filter, FilterError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(FilterError::syntax("the filter is empty"));
    }
    let mut parser = Parser {
        toks,
        pos: 0,
        var: None,
        advanced: None,
        resource,
    };
    let expr = parser.expr()?;
    if let Some((at, tok)) = parser.toks.get(parser.pos) {
        return Err(FilterError::syntax(format!(
            "unexpected {} at position {at}; expected 'and', 'or' or the end of the filter",
            describe(Some(tok))
        )));
    }
    Ok(Filter {
        expr,
        advanced: parser.advanced,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks
            .get(self.pos)
            .map_or_else(|| self.toks.last().map_or(0, |(p, _)| *p + 1), |(p, _)| *p)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        tok
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == word)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), FilterError> {
        let at = self.at();
        match self.next() {
            Some(ref t) if t == want => Ok(()),
            other => Err(FilterError::syntax(format!(
                "expected {what} at position {at}, found {}",
                describe(other.as_ref())
            ))),
        }
    }

    fn needs_advanced(&mut self, why: String) {
        if self.advanced.is_none() {
            self.advanced = Some(why);
        }
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.is_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.is_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.is_keyword("not") {
            self.pos += 1;
            self.needs_advanced("Operator 'not'".to_owned());
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let at = self.at();
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(inner)
            }
            Some(Tok::Ident(name)) => {
                let lower = name.to_ascii_lowercase();
                if (lower == "startswith" || lower == "endswith")
                    && self.peek() == Some(&Tok::LParen)
                {
                    return self.string_function(lower == "endswith");
                }
                if let Some(collection) = name.strip_suffix("/any") {
                    return self.lambda(collection, at);
                }
                if name.ends_with("/all") {
                    return Err(FilterError {
                        code: "Request_UnsupportedQuery",
                        message: format!(
                            "Unsupported Query: the lambda operator 'all' in '{name}' is not supported."
                        ),
                    });
                }
                let operand = self.operand(name, at)?;
                self.comparison(operand)
            }
            other => Err(FilterError::syntax(format!(
                "expected a property, a function or '(' at position {at}, found {}",
                describe(other.as_ref())
            ))),
        }
    }

    /// Resolves an identifier used as an operand: the lambda variable or a known property.
    fn operand(&mut self, name: String, at: usize) -> Result<Operand, FilterError> {
        if self.var.as_ref() == Some(&name) {
            return Ok(Operand::Element);
        }
        if matches!(
            name.as_str(),
            "eq" | "ne" | "and" | "or" | "not" | "in" | "true" | "false" | "null"
        ) {
            return Err(FilterError::syntax(format!(
                "expected a property at position {at}, found keyword '{name}'"
            )));
        }
        if self.var.is_some() {
            return Err(FilterError::syntax(format!(
                "'{name}' at position {at} is not the lambda variable"
            )));
        }
        let info = property_info(&name, self.resource)
            .ok_or_else(|| FilterError::unsupported_property(&name, self.resource))?;
        if !info.default {
            self.needs_advanced(format!("Property '{name}'"));
        }
        Ok(Operand::Property(
            name.split('/').map(str::to_owned).collect(),
        ))
    }

    fn operand_type(&self, operand: &Operand) -> Type {
        match operand {
            Operand::Element => Type::Str,
            Operand::Property(path) => {
                property_info(&path.join("/"), self.resource).map_or(Type::Str, |i| i.ty)
            }
        }
    }

    fn operand_name(operand: &Operand) -> String {
        match operand {
            Operand::Element => "the lambda variable".to_owned(),
            Operand::Property(path) => format!("'{}'", path.join("/")),
        }
    }

    fn comparison(&mut self, operand: Operand) -> Result<Expr, FilterError> {
        let at = self.at();
        let op = match self.next() {
            Some(Tok::Ident(word)) => match word.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "in" => return self.in_list(operand),
                other => {
                    return Err(FilterError::syntax(format!(
                        "unknown operator '{other}' at position {at}; expected eq, ne or in"
                    )));
                }
            },
            other => {
                return Err(FilterError::syntax(format!(
                    "expected an operator after {} at position {at}, found {}",
                    Self::operand_name(&operand),
                    describe(other.as_ref())
                )));
            }
        };
        let ty = self.operand_type(&operand);
        let literal = self.literal(ty)?;
        if op == Op::Ne {
            self.needs_advanced("Operator 'ne'".to_owned());
        }
        if literal == Literal::Null {
            self.needs_advanced("Comparing with null".to_owned());
        }
        if !matches!(op, Op::Eq | Op::Ne) && ty != Type::DateTime {
            return Err(FilterError {
                code: "Request_UnsupportedQuery",
                message: format!(
                    "Unsupported Query: range operators are not supported on {}.",
                    Self::operand_name(&operand)
                ),
            });
        }
        Ok(Expr::Compare(operand, op, literal))
    }

    fn in_list(&mut self, operand: Operand) -> Result<Expr, FilterError> {
        let ty = self.operand_type(&operand);
        self.expect(&Tok::LParen, "'(' after 'in'")?;
        let mut values = vec![self.literal(ty)?];
        loop {
            let at = self.at();
            match self.next() {
                Some(Tok::Comma) => values.push(self.literal(ty)?),
                Some(Tok::RParen) => break,
                other => {
                    return Err(FilterError::syntax(format!(
                        "expected ',' or ')' in the 'in' list at position {at}, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
        Ok(Expr::In(operand, values))
    }

    fn literal(&mut self, ty: Type) -> Result<Literal, FilterError> {
        let at = self.at();
        let tok = self.next();
        let literal = match &tok {
            Some(Tok::Str(s)) => Literal::Str(s.clone()),
            Some(Tok::Ident(w)) if w == "true" => Literal::Bool(true),
            Some(Tok::Ident(w)) if w == "false" => Literal::Bool(false),
            Some(Tok::Ident(w)) if w == "null" => Literal::Null,
            Some(Tok::Bare(b)) if ty == Type::DateTime => {
                Literal::DateTime(b.parse::<jiff::Timestamp>().map_err(|_| {
                    FilterError::syntax(format!("'{b}' at position {at} is not a date-time"))
                })?)
            }
            other => {
                return Err(FilterError::syntax(format!(
                    "expected a literal at position {at}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        let fits = matches!(
            (&literal, ty),
            (Literal::Null, _)
                | (Literal::Str(_), Type::Str)
                | (Literal::Bool(_), Type::Bool)
                | (Literal::DateTime(_), Type::DateTime)
        );
        if !fits {
            return Err(FilterError::syntax(format!(
                "the literal {} at position {at} does not match the property's type ({})",
                describe(tok.as_ref()),
                match ty {
                    Type::Str => "a quoted string",
                    Type::Bool => "true or false, unquoted",
                    Type::DateTime => "an unquoted date-time such as 2024-01-31T00:00:00Z",
                }
            )));
        }
        Ok(literal)
    }

    fn string_function(&mut self, ends: bool) -> Result<Expr, FilterError> {
        let name = if ends { "endswith" } else { "startswith" };
        self.expect(&Tok::LParen, "'('")?;
        let at = self.at();
        let operand = match self.next() {
            Some(Tok::Ident(prop)) => self.operand(prop, at)?,
            other => {
                return Err(FilterError::syntax(format!(
                    "expected a property as the first argument of {name} at position {at}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        if self.operand_type(&operand) != Type::Str {
            return Err(FilterError::syntax(format!(
                "{name} needs a string property, not {}",
                Self::operand_name(&operand)
            )));
        }
        self.expect(&Tok::Comma, "','")?;
        let at = self.at();
        let value = match self.next() {
            Some(Tok::Str(s)) => s,
            other => {
                return Err(FilterError::syntax(format!(
                    "expected a string as the second argument of {name} at position {at}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        self.expect(&Tok::RParen, "')'")?;
        if ends {
            if let Operand::Property(path) = &operand
                && !endswith_allowed(&path.join("/"))
            {
                return Err(FilterError::unsupported_property(
                    &path.join("/"),
                    self.resource,
                ));
            }
            self.needs_advanced("Operator 'endsWith'".to_owned());
            Ok(Expr::EndsWith(operand, value))
        } else {
            Ok(Expr::StartsWith(operand, value))
        }
    }

    fn lambda(&mut self, collection: &str, at: usize) -> Result<Expr, FilterError> {
        if self.var.is_some() {
            return Err(FilterError::syntax(format!(
                "nested lambda at position {at}"
            )));
        }
        if self.resource != Resource::User || !is_collection(collection) {
            return Err(FilterError::unsupported_property(collection, self.resource));
        }
        self.expect(&Tok::LParen, "'(' after 'any'")?;
        let var_at = self.at();
        let var = match self.next() {
            Some(Tok::Ident(v)) if !v.contains('/') => v,
            other => {
                return Err(FilterError::syntax(format!(
                    "expected a lambda variable at position {var_at}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        self.expect(&Tok::Colon, "':' after the lambda variable")?;
        self.var = Some(var);
        let body = self.expr();
        self.var = None;
        let body = body?;
        self.expect(&Tok::RParen, "')' closing the lambda")?;
        Ok(Expr::Any(collection.to_owned(), Box::new(body)))
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The index a comparison can be answered from.
fn indexed(path: &[String]) -> Option<Indexed> {
    match path {
        [p] => match p.as_str() {
            "id" => Some(Indexed::Id),
            "userPrincipalName" => Some(Indexed::UserPrincipalName),
            "mail" => Some(Indexed::Mail),
            "employeeId" => Some(Indexed::EmployeeId),
            _ => None,
        },
        _ => None,
    }
}

fn string_literals(literals: &[Literal]) -> Option<Vec<String>> {
    literals
        .iter()
        .map(|l| match l {
            Literal::Str(s) => Some(s.to_lowercase()),
            _ => None,
        })
        .collect()
}

/// The index lookups whose union holds every user `expr` can match, when there are such.
fn plan(expr: &Expr) -> Option<Vec<(Indexed, String)>> {
    match expr {
        Expr::Compare(Operand::Property(path), Op::Eq, Literal::Str(v)) => {
            Some(vec![(indexed(path)?, v.to_lowercase())])
        }
        Expr::In(Operand::Property(path), literals) => {
            let prop = indexed(path)?;
            Some(
                string_literals(literals)?
                    .into_iter()
                    .map(|v| (prop, v))
                    .collect(),
            )
        }
        Expr::Any(collection, body) if collection == "proxyAddresses" => element_plan(body),
        Expr::Or(a, b) => {
            let mut keys = plan(a)?;
            keys.extend(plan(b)?);
            Some(keys)
        }
        Expr::And(a, b) => plan(a).or_else(|| plan(b)),
        _ => None,
    }
}

/// Inside `proxyAddresses/any(p: ...)`: equalities on the element.
fn element_plan(expr: &Expr) -> Option<Vec<(Indexed, String)>> {
    match expr {
        Expr::Compare(Operand::Element, Op::Eq, Literal::Str(v)) => {
            Some(vec![(Indexed::ProxyAddress, v.to_lowercase())])
        }
        Expr::In(Operand::Element, literals) => Some(
            string_literals(literals)?
                .into_iter()
                .map(|v| (Indexed::ProxyAddress, v))
                .collect(),
        ),
        Expr::Or(a, b) => {
            let mut keys = element_plan(a)?;
            keys.extend(element_plan(b)?);
            Some(keys)
        }
        _ => None,
    }
}

impl Filter {
    /// Index lookups whose union is a superset of the matches (each candidate is still checked
    /// with [`Filter::matches`]), when the filter is an equality, `in` or `or` of equalities on
    /// indexed properties (`proxyAddresses/any(p:p eq '...')` included) or an `and` with one;
    /// `None` means a scan.
    pub(crate) fn index_plan(&self) -> Option<Vec<(Indexed, String)>> {
        plan(&self.expr)
    }

    /// Whether a user (its property map) matches.
    pub(crate) fn matches(&self, user: &Map<String, Value>) -> bool {
        eval(&self.expr, user, None)
    }
}

fn lookup<'a>(user: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = user.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    (!value.is_null()).then_some(value)
}

fn eval(expr: &Expr, user: &Map<String, Value>, element: Option<&Value>) -> bool {
    let resolve = |operand: &Operand| -> Option<Value> {
        match operand {
            Operand::Element => element.filter(|v| !v.is_null()).cloned(),
            Operand::Property(path) => lookup(user, path).cloned(),
        }
    };
    match expr {
        Expr::Or(a, b) => eval(a, user, element) || eval(b, user, element),
        Expr::And(a, b) => eval(a, user, element) && eval(b, user, element),
        Expr::Not(a) => !eval(a, user, element),
        Expr::Compare(operand, op, literal) => compare(resolve(operand).as_ref(), *op, literal),
        Expr::In(operand, literals) => {
            let value = resolve(operand);
            literals.iter().any(|l| compare(value.as_ref(), Op::Eq, l))
        }
        Expr::StartsWith(operand, prefix) => resolve(operand)
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().starts_with(&prefix.to_lowercase())),
        Expr::EndsWith(operand, suffix) => resolve(operand)
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().ends_with(&suffix.to_lowercase())),
        Expr::Any(collection, body) => user
            .get(collection)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|item| eval(body, user, Some(item)))),
    }
}

fn compare(value: Option<&Value>, op: Op, literal: &Literal) -> bool {
    let equal = match (value, literal) {
        (None, Literal::Null) => true,
        (None, _) | (Some(_), Literal::Null) => false,
        (Some(Value::String(s)), Literal::Str(l)) => s.to_lowercase() == l.to_lowercase(),
        (Some(Value::Bool(b)), Literal::Bool(l)) => b == l,
        (Some(Value::String(s)), Literal::DateTime(l)) => {
            return match s.parse::<jiff::Timestamp>() {
                Ok(ts) => match op {
                    Op::Eq => ts == *l,
                    Op::Ne => ts != *l,
                    Op::Gt => ts > *l,
                    Op::Ge => ts >= *l,
                    Op::Lt => ts < *l,
                    Op::Le => ts <= *l,
                },
                Err(_) => op == Op::Ne,
            };
        }
        _ => false,
    };
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn matches(filter: &str, u: &Value) -> bool {
        match parse(filter, Resource::User) {
            Ok(f) => f.matches(&user(u.clone())),
            Err(e) => panic!("{filter}: {e:?}"),
        }
    }

    #[test]
    fn doubled_quotes_are_one_quote_and_cannot_widen_the_query() {
        let obrien = json!({"employeeId": "o'brien"});
        let other = json!({"employeeId": "y"});
        assert!(matches("employeeId eq 'o''brien'", &obrien));
        assert!(!matches("employeeId eq 'o''brien'", &other));
        let injected = "employeeId eq 'x'' or employeeId ne ''y'";
        let f = parse(injected, Resource::User).expect("a single literal");
        assert_eq!(f.advanced, None);
        assert!(!f.matches(&user(other)));
        assert!(f.matches(&user(json!({"employeeId": "x' or employeeId ne 'y"}))));
    }

    #[test]
    fn an_unquoted_injection_is_an_advanced_query_not_a_match_all() {
        let f = parse("employeeId eq 'x' or employeeId ne 'y'", Resource::User).expect("parses");
        assert_eq!(f.advanced.as_deref(), Some("Operator 'ne'"));
    }

    #[test]
    fn malformed_filters_are_errors() {
        for bad in [
            "",
            "employeeId eq 'x",
            "employeeId eq",
            "employeeId = 'x'",
            "(employeeId eq 'x'",
            "employeeId eq 'x')",
            "employeeId eq 'x' or",
            "employeeId eq x",
            "accountEnabled eq 'true'",
            "startswith(displayName 'a')",
            "proxyAddresses/any(p:q eq 'x')",
            "employeeId eq 'a' employeeId eq 'b'",
        ] {
            let err = parse(bad, Resource::User).expect_err(bad);
            assert_eq!(err.code, "BadRequest", "{bad}: {err:?}");
            assert!(
                err.message.starts_with("Invalid filter clause"),
                "{bad}: {err:?}"
            );
        }
        let err = parse("favouriteColour eq 'red'", Resource::User).expect_err("unknown property");
        assert_eq!(err.code, "Request_UnsupportedQuery");
        assert!(err.message.contains("'favouriteColour'"));
    }

    #[test]
    fn proxy_addresses_any_ignores_case() {
        let u =
            json!({"proxyAddresses": ["SMTP:Ada.Lovelace@Acme.example", "smtp:ada@acme.example"]});
        assert!(matches(
            "proxyAddresses/any(p:p eq 'smtp:ada.lovelace@acme.example')",
            &u
        ));
        assert!(matches(
            "proxyAddresses/any(x:startswith(x,'SMTP:ada@'))",
            &u
        ));
        assert!(!matches(
            "proxyAddresses/any(p:p eq 'smtp:grace@acme.example')",
            &u
        ));
    }

    #[test]
    fn and_or_parentheses_booleans_and_in() {
        let u = json!({"employeeId": "1001", "accountEnabled": true, "mail": "A@acme.example", "displayName": "Ada"});
        assert!(matches(
            "employeeId eq '1001' and accountEnabled eq true",
            &u
        ));
        assert!(!matches(
            "employeeId eq '1001' and accountEnabled eq false",
            &u
        ));
        assert!(matches(
            "(employeeId eq '9' or mail eq 'a@ACME.example') and startswith(displayName,'ad')",
            &u
        ));
        assert!(matches("employeeId in ('1000','1001')", &u));
        assert!(!matches("employeeId in ('1000')", &u));
        assert!(matches("employeeOrgData/costCenter eq null", &u));
    }

    #[test]
    fn equalities_on_indexed_properties_plan_index_lookups() {
        let plan = |f: &str| {
            parse(f, Resource::User)
                .expect("parses")
                .index_plan()
                .map(|keys| keys.into_iter().map(|(_, v)| v).collect::<Vec<_>>())
        };
        assert_eq!(plan("employeeId eq 'E1'"), Some(vec!["e1".to_owned()]));
        assert_eq!(
            plan("userPrincipalName eq 'a@x' or mail eq 'B@x'"),
            Some(vec!["a@x".to_owned(), "b@x".to_owned()])
        );
        assert_eq!(
            plan("proxyAddresses/any(p:p eq 'SMTP:a@x' or p eq 'smtp:b@x')"),
            Some(vec!["smtp:a@x".to_owned(), "smtp:b@x".to_owned()])
        );
        assert_eq!(
            plan("employeeId in ('1','2')"),
            Some(vec!["1".to_owned(), "2".to_owned()])
        );
        assert_eq!(
            plan("startswith(displayName,'a') and employeeId eq '7'"),
            Some(vec!["7".to_owned()])
        );
        assert_eq!(plan("startswith(employeeId,'E')"), None);
        assert_eq!(plan("employeeId eq 'E1' or startswith(mail,'a')"), None);
        assert_eq!(plan("displayName eq 'Ada'"), None);
        assert_eq!(plan("employeeId ne 'E1'"), None);
    }

    #[test]
    fn advanced_queries_are_named() {
        assert!(
            parse("employeeType eq 'Contractor'", Resource::User)
                .expect("parses")
                .advanced
                .is_some()
        );
        assert!(
            parse("endswith(mail,'@acme.example')", Resource::User)
                .expect("parses")
                .advanced
                .is_some()
        );
        assert!(
            parse("not(employeeId eq '1')", Resource::User)
                .expect("parses")
                .advanced
                .is_some()
        );
        assert!(
            parse("employeeId eq '1'", Resource::User)
                .expect("parses")
                .advanced
                .is_none()
        );
        let hired = json!({"employeeHireDate": "2024-03-01T00:00:00Z"});
        assert!(matches("employeeHireDate ge 2024-01-01T00:00:00Z", &hired));
        assert!(!matches("employeeHireDate lt 2024-01-01T00:00:00Z", &hired));
    }
}
