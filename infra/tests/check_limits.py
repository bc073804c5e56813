#!/usr/bin/env python3
"""Checks on infra/template.yaml that cfn-lint and checkov do not make.

    check_limits.py TEMPLATE              report findings; exit 1 if there are any
    check_limits.py --self-test TEMPLATE  break TEMPLATE in known ways and make sure
                                          each break is found (the checks check themselves)

Findings:
  * an SQS consumer of a FIFO queue with BatchSize over 10 or any MaximumBatchingWindowInSeconds
    (Lambda refuses both for FIFO; cfn-lint does not know which queue is FIFO);
  * a consumed queue without a redrive policy (to a queue of the same kind in the template);
  * a visibility timeout under 6x the consuming function's timeout (AWS's guidance: otherwise a
    message is delivered again while its first invocation and its retries may still be running);
  * a consumer without FunctionResponseTypes: [ReportBatchItemFailures] (the handlers return
    batchItemFailures; without it Lambda ignores them and redelivers the whole batch or none);
  * a MaximumConcurrency outside 2..1000;
  * a queue EventBridge Scheduler delivers to that is not FIFO with ContentBasedDeduplication
    (Scheduler cannot set a deduplication id);
  * a Ref / GetAtt / ${} to something that does not exist, SAM-generated names included (cfn-lint
    skips `!GetAtt <Function>Url.FunctionUrl`);
  * a function role that may read secrets of another stage's (SSM parameters or Secrets Manager
    secrets outside its own folders: intake webhook/ and hr-api/, mapping and entra directory/,
    writeback hr-api/; hrsync_lambda::Function::secret_uses), or not its own;
  * sts:GetWebIdentityToken (secretless Graph access) on a role other than mapping's or entra's,
    or without the conditions: audience api://AzureADTokenExchange, at most 300 s, keys present;
  * YAML anchors and aliases (CloudFormation does not support them).

Numbers given as `!Ref Parameter` are checked at the parameter's default. Uses PyYAML only.
"""

from __future__ import annotations

import copy
import re
import sys

import yaml

FIFO_MAX_BATCH = 10
VISIBILITY_FACTOR = 6
SAM_DEFAULT_TIMEOUT = 3
SQS_DEFAULT_VISIBILITY = 30
SQS_DEFAULT_BATCH = 10
PSEUDO = {
    "AWS::AccountId", "AWS::NoValue", "AWS::NotificationARNs", "AWS::Partition", "AWS::Region",
    "AWS::StackId", "AWS::StackName", "AWS::URLSuffix",
}


# ------------------------------------------------------------------------------------------
# Loading: CloudFormation short-form tags become their long form ({"Ref": ...}, {"Fn::If": ...}).
# ------------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::" + tag_suffix: value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load(text: str) -> dict:
    return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def aliases(text: str) -> list[str]:
    found = []
    for event in yaml.parse(text, Loader=CfnLoader):
        if isinstance(event, yaml.AliasEvent):
            found.append(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} "
                         "(CloudFormation does not support anchors or aliases: write it out)")
    return found


# ------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------
class Template:
    def __init__(self, doc: dict):
        self.doc = doc
        self.resources: dict = doc.get("Resources") or {}
        self.parameters: dict = doc.get("Parameters") or {}
        self.globals_fn: dict = (doc.get("Globals") or {}).get("Function") or {}

    def of_type(self, kind: str):
        return [(name, res) for name, res in self.resources.items() if res.get("Type") == kind]

    def props(self, name: str) -> dict:
        return self.resources.get(name, {}).get("Properties") or {}

    def number(self, value, what: str, findings: list):
        """An int from a literal or a parameter's default, else a finding and None."""
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.parameters:
            value = self.parameters[value["Ref"]].get("Default")
        try:
            return int(value)
        except (TypeError, ValueError):
            findings.append(f"{what}: cannot resolve {value!r} to a number")
            return None

    def resource_of(self, value, kind: str | None = None):
        """The logical id a Ref / GetAtt <x>.Arn points to (of the given type), else None."""
        name = None
        if isinstance(value, dict) and "Ref" in value:
            name = value["Ref"]
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            name = value["Fn::GetAtt"][0]
        if name not in self.resources:
            return None
        if kind and self.resources[name].get("Type") != kind:
            return None
        return name

    def is_fifo(self, queue: str) -> bool:
        return str(self.props(queue).get("FifoQueue", False)).lower() == "true"

    def function_timeout(self, function: str, findings: list):
        props = self.props(function)
        timeout = props.get("Timeout", self.globals_fn.get("Timeout", SAM_DEFAULT_TIMEOUT))
        return self.number(timeout, f"{function}.Timeout", findings)

    def consumers(self, findings: list):
        """(label, queue, function, properties) for every SQS -> Lambda mapping."""
        out = []
        for name, res in self.of_type("AWS::Lambda::EventSourceMapping"):
            props = res.get("Properties") or {}
            source = props.get("EventSourceArn")
            queue = self.resource_of(source, "AWS::SQS::Queue")
            if queue is None:
                if isinstance(source, dict) and self.resource_of(source) is None:
                    findings.append(f"{name}: EventSourceArn {source!r} is not a resource of this template")
                continue  # a stream or an external source: not checked here
            function = self.resource_of(props.get("FunctionName"))
            if function is None:
                findings.append(f"{name}: FunctionName {props.get('FunctionName')!r} is not a function of this template")
                continue
            out.append((name, queue, function, props))
        for fname, res in self.of_type("AWS::Serverless::Function"):
            for ename, event in ((res.get("Properties") or {}).get("Events") or {}).items():
                if (event or {}).get("Type") != "SQS":
                    continue
                props = event.get("Properties") or {}
                queue = self.resource_of(props.get("Queue"), "AWS::SQS::Queue")
                if queue is None:
                    findings.append(f"{fname}.Events.{ename}: Queue {props.get('Queue')!r} is not a queue of this template")
                    continue
                out.append((f"{fname}.Events.{ename}", queue, fname, props))
        return out


def check(doc: dict) -> list[str]:
    t = Template(doc)
    findings: list[str] = []

    for label, queue, function, props in t.consumers(findings):
        fifo = t.is_fifo(queue)
        batch = t.number(props.get("BatchSize", SQS_DEFAULT_BATCH), f"{label}.BatchSize", findings)
        window = props.get("MaximumBatchingWindowInSeconds")
        if fifo:
            if batch is not None and batch > FIFO_MAX_BATCH:
                findings.append(f"{label}: BatchSize {batch} on FIFO queue {queue}: at most {FIFO_MAX_BATCH}")
            if window is not None:
                findings.append(f"{label}: MaximumBatchingWindowInSeconds on FIFO queue {queue}: not allowed for FIFO")
        elif batch is not None and batch > 10 and not window:
            findings.append(f"{label}: BatchSize {batch} over 10 needs MaximumBatchingWindowInSeconds >= 1")

        if "ReportBatchItemFailures" not in (props.get("FunctionResponseTypes") or []):
            findings.append(f"{label}: FunctionResponseTypes lacks ReportBatchItemFailures "
                            f"({function} reports partial batch failures)")

        scaling = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
        if scaling is not None:
            cap = t.number(scaling, f"{label}.ScalingConfig.MaximumConcurrency", findings)
            if cap is not None and not 2 <= cap <= 1000:
                findings.append(f"{label}: MaximumConcurrency {cap} outside 2..1000")

        qprops = t.props(queue)
        redrive = qprops.get("RedrivePolicy")
        if not redrive:
            findings.append(f"{queue}: consumed by {function} but has no RedrivePolicy (no dead-letter queue)")
        else:
            dlq = t.resource_of(redrive.get("deadLetterTargetArn"), "AWS::SQS::Queue")
            if dlq is None:
                findings.append(f"{queue}: RedrivePolicy.deadLetterTargetArn is not a queue of this template")
            elif t.is_fifo(dlq) != fifo:
                findings.append(f"{queue}: its dead-letter queue {dlq} must be {'FIFO' if fifo else 'standard'} like it")
            receives = t.number(redrive.get("maxReceiveCount"), f"{queue}.RedrivePolicy.maxReceiveCount", findings)
            if receives is not None and receives < 1:
                findings.append(f"{queue}: RedrivePolicy.maxReceiveCount must be at least 1")

        visibility = t.number(qprops.get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY), f"{queue}.VisibilityTimeout", findings)
        timeout = t.function_timeout(function, findings)
        if visibility is not None and timeout is not None and visibility < VISIBILITY_FACTOR * timeout:
            findings.append(f"{queue}: VisibilityTimeout {visibility} s is under {VISIBILITY_FACTOR} x "
                            f"{function}'s timeout of {timeout} s (= {VISIBILITY_FACTOR * timeout} s)")

    findings += check_scheduler_targets(t)
    findings += check_references(t)
    findings += check_secret_access(t)
    findings += check_web_identity_tokens(t)
    return findings


# The roles that call Graph (mapping, entra) and the only audience their STS tokens may carry.
GRAPH_ROLES = ("MappingRole", "EntraRole")
ENTRA_AUDIENCE = "api://AzureADTokenExchange"
MAX_TOKEN_SECONDS = 300


def _role_statements(t: Template, role: str) -> list[dict]:
    """Every statement of the role's inline policies, the branches of an Fn::If included."""
    found = []
    for policy in t.props(role).get("Policies") or []:
        for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
            if isinstance(statement, dict) and "Fn::If" in statement:
                found += [s for s in statement["Fn::If"][1:] if isinstance(s, dict) and "Action" in s]
            elif isinstance(statement, dict):
                found.append(statement)
    return found


def check_web_identity_tokens(t: Template) -> list[str]:
    """sts:GetWebIdentityToken (secretless Graph access): only the Graph-calling roles, only for
    Entra's audience, for at most 300 s, and the keys required present (Null false)."""
    findings = []
    for role, _ in t.of_type("AWS::IAM::Role"):
        for statement in _role_statements(t, role):
            actions = statement.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            if not any(a in ("sts:GetWebIdentityToken", "sts:*", "*") for a in actions):
                continue
            if role not in GRAPH_ROLES:
                findings.append(f"{role}: sts:GetWebIdentityToken outside the Graph-calling roles {GRAPH_ROLES}")
                continue
            condition = statement.get("Condition") or {}
            audience = (condition.get("ForAllValues:StringEquals") or {}).get("sts:IdentityTokenAudience")
            if audience not in (ENTRA_AUDIENCE, [ENTRA_AUDIENCE]):
                findings.append(f"{role}: sts:GetWebIdentityToken not limited to the audience {ENTRA_AUDIENCE} "
                                f"(ForAllValues:StringEquals sts:IdentityTokenAudience)")
            duration = (condition.get("NumericLessThanEquals") or {}).get("sts:DurationSeconds")
            if not isinstance(duration, int) or duration > MAX_TOKEN_SECONDS:
                findings.append(f"{role}: sts:GetWebIdentityToken without NumericLessThanEquals "
                                f"sts:DurationSeconds <= {MAX_TOKEN_SECONDS}")
            present = condition.get("Null") or {}
            for key in ("sts:IdentityTokenAudience", "sts:DurationSeconds"):
                if str(present.get(key)).lower() != "false":
                    findings.append(f"{role}: sts:GetWebIdentityToken without Null {key} = false "
                                    f"(a request without the key would pass)")
    return findings


# The secret folders each function's role may read: what the function's own stage uses
# (hrsync_lambda::Function::secret_uses). The config parameter is read by all.
SECRET_FOLDERS = {
    "IntakeRole": {"webhook", "hr-api"},
    "MappingRole": {"directory"},
    "EntraRole": {"directory"},
    "WritebackRole": {"hr-api"},
}
# The parameter that overrides a folder's Secrets Manager ARN pattern.
SECRET_PATTERN_PARAMETERS = {
    "DirectorySecretsArnPattern": "directory",
    "HrApiSecretsArnPattern": "hr-api",
    "WebhookSecretsArnPattern": "webhook",
}


def _secret_folders(resource, service: str) -> list[str | None]:
    """The folder each resource of a GetParameter / GetSecretValue statement grants (None: a
    resource that is not one folder of hrsync's, such as `hrsync/*`)."""
    if isinstance(resource, list):
        return [folder for item in resource for folder in _secret_folders(item, service)]
    if isinstance(resource, dict) and "Fn::If" in resource:
        _, then, otherwise = resource["Fn::If"]
        return _secret_folders(then, service) + _secret_folders(otherwise, service)
    if isinstance(resource, dict) and "Ref" in resource:
        return [SECRET_PATTERN_PARAMETERS.get(resource["Ref"])]
    text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
    if not isinstance(text, str):
        return [None]
    if service == "ssm" and text.endswith("parameter${ConfigParameterName}"):
        return []
    pattern = r"parameter\$\{SsmParameterPath\}/([a-z-]+)/\*$" if service == "ssm" else r":secret:hrsync/([a-z-]+)/\*$"
    match = re.search(pattern, text)
    return [match.group(1) if match else None]


def check_secret_access(t: Template) -> list[str]:
    findings = []
    for role, wanted in SECRET_FOLDERS.items():
        if role not in t.resources:
            findings.append(f"{role}: missing (a function role whose secret access is checked)")
            continue
        for service, action in (("ssm", "ssm:GetParameter"), ("secretsmanager", "secretsmanager:GetSecretValue")):
            granted: list[str | None] = []
            for policy in t.props(role).get("Policies") or []:
                for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
                    if not isinstance(statement, dict) or "Action" not in statement:
                        continue  # a conditional statement (KMS): not a read of secrets
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    if any(a == action or a in (f"{service}:*", "*") for a in actions):
                        granted += _secret_folders(statement.get("Resource"), service)
            if None in granted:
                findings.append(f"{role}: {action} on a resource beyond its stage's folders {sorted(wanted)} "
                                "(every function may then read every secret)")
            extra = set(g for g in granted if g) - wanted
            if extra:
                findings.append(f"{role}: {action} on another stage's secrets: {sorted(extra)}")
            missing = wanted - set(granted)
            if missing:
                findings.append(f"{role}: {action} lacks its own stage's secrets: {sorted(missing)}")
    return findings


def check_scheduler_targets(t: Template) -> list[str]:
    findings = []
    targets = []
    env = ((t.globals_fn.get("Environment") or {}).get("Variables") or {})
    envs = [("Globals", env)] + [
        (name, ((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
        for name, res in t.of_type("AWS::Serverless::Function")
    ]
    for where, variables in envs:
        value = variables.get("HRSYNC_WORKER_EVENTS_QUEUE_ARN")
        if value is not None:
            queue = t.resource_of(value, "AWS::SQS::Queue")
            if queue is None:
                findings.append(f"{where}: HRSYNC_WORKER_EVENTS_QUEUE_ARN is not a queue of this template")
            else:
                targets.append((f"{where}.HRSYNC_WORKER_EVENTS_QUEUE_ARN", queue))
    for name, res in t.of_type("AWS::Scheduler::Schedule"):
        queue = t.resource_of(((res.get("Properties") or {}).get("Target") or {}).get("Arn"), "AWS::SQS::Queue")
        if queue is not None:
            targets.append((name, queue))
    for where, queue in targets:
        props = t.props(queue)
        if not t.is_fifo(queue):
            findings.append(f"{queue} (Scheduler target, {where}): must be a FIFO queue")
        elif str(props.get("ContentBasedDeduplication", False)).lower() != "true":
            findings.append(f"{queue} (Scheduler target, {where}): needs ContentBasedDeduplication: true "
                            "(Scheduler cannot set a MessageDeduplicationId)")
    return findings


def check_references(t: Template) -> list[str]:
    known = set(t.parameters) | set(t.resources) | PSEUDO
    # Resources the SAM transform adds, under names templates may refer to.
    for name, res in t.of_type("AWS::Serverless::Function"):
        props = res.get("Properties") or {}
        if props.get("FunctionUrlConfig"):
            known.add(f"{name}Url")
        if "Role" not in props:
            known.add(f"{name}Role")
    findings = []

    def walk(node, where):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and isinstance(node["Ref"], str) and node["Ref"] not in known:
                findings.append(f"{where}: Ref {node['Ref']} names nothing in this template")
            if "Fn::GetAtt" in node:
                target = node["Fn::GetAtt"]
                name = target[0] if isinstance(target, list) and target else None
                if isinstance(name, str) and name not in known:
                    findings.append(f"{where}: GetAtt {name} names nothing in this template")
            if "Fn::Sub" in node:
                sub = node["Fn::Sub"]
                text, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1] if len(sub) > 1 else {})
                for var in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    base = var.split(".")[0]
                    if base not in known and base not in local:
                        findings.append(f"{where}: ${{{var}}} names nothing in this template")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for section in ("Globals", "Resources", "Outputs", "Conditions"):
        for name, body in (t.doc.get(section) or {}).items():
            walk(body, f"{section}.{name}")
    return findings


# ------------------------------------------------------------------------------------------
# Self-test: every check must catch the break it exists for.
# ------------------------------------------------------------------------------------------
def _mutations(doc: dict):
    t = Template(doc)

    def first(kind, pred=lambda name, res: True):
        for name, res in t.of_type(kind):
            if pred(name, res):
                return name
        raise SystemExit(f"self-test: the template has no {kind} to break")

    fifo_esm = first("AWS::Lambda::EventSourceMapping",
                     lambda n, r: t.is_fifo(t.resource_of(r["Properties"]["EventSourceArn"]) or ""))
    esm_props = lambda d: d["Resources"][fifo_esm]["Properties"]  # noqa: E731
    queue = t.resource_of(doc["Resources"][fifo_esm]["Properties"]["EventSourceArn"])
    function = t.resource_of(doc["Resources"][fifo_esm]["Properties"]["FunctionName"])
    q = lambda d: d["Resources"][queue]["Properties"]  # noqa: E731
    f = lambda d: d["Resources"][function]["Properties"]  # noqa: E731

    def batch_11(d): esm_props(d)["BatchSize"] = 11
    def window(d): esm_props(d)["MaximumBatchingWindowInSeconds"] = 1
    def no_report(d): esm_props(d).pop("FunctionResponseTypes", None)
    def no_redrive(d): q(d).pop("RedrivePolicy", None)
    def short_visibility(d): q(d)["VisibilityTimeout"] = VISIBILITY_FACTOR * int(f(d)["Timeout"]) - 1
    def long_timeout(d): f(d)["Timeout"] = int(q(d)["VisibilityTimeout"]) // VISIBILITY_FACTOR + 1
    def global_timeout(d):
        f(d).pop("Timeout", None)
        d["Globals"]["Function"]["Timeout"] = int(q(d)["VisibilityTimeout"]) // VISIBILITY_FACTOR + 1
    def concurrency_1(d): esm_props(d)["ScalingConfig"] = {"MaximumConcurrency": 1}
    def batch_param(d):
        d["Parameters"]["BrokenBatch"] = {"Type": "Number", "Default": 25}
        esm_props(d)["BatchSize"] = {"Ref": "BrokenBatch"}
    def standard_dlq(d):
        dlq = t.resource_of(q(d)["RedrivePolicy"]["deadLetterTargetArn"])
        d["Resources"][dlq]["Properties"].pop("FifoQueue", None)
    def scheduler_target_dedup(d):
        target = t.resource_of(d["Globals"]["Function"]["Environment"]["Variables"]["HRSYNC_WORKER_EVENTS_QUEUE_ARN"])
        d["Resources"][target]["Properties"].pop("ContentBasedDeduplication", None)
    def sam_sqs_event(d):
        f(d)["Events"] = {"Extra": {"Type": "SQS", "Properties": {
            "Queue": {"Fn::GetAtt": [queue, "Arn"]}, "BatchSize": 50}}}
    def bad_getatt(d):
        d["Outputs"]["Broken"] = {"Value": {"Fn::Sub": "${IntakeFunctionUrlx.FunctionUrl}webhooks/"}}
    def bad_ref(d): esm_props(d)["FunctionName"] = {"Ref": "NoSuchFunction"}

    def statements(d, role):
        return [s for p in d["Resources"][role]["Properties"]["Policies"]
                for s in p["PolicyDocument"]["Statement"] if isinstance(s, dict) and "Action" in s]

    def every_secret(d):
        for s in statements(d, "IntakeRole"):
            if s["Action"] == "secretsmanager:GetSecretValue":
                s["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:hrsync/*"}
    def writeback_reads_directory(d):
        for s in statements(d, "WritebackRole"):
            if s["Action"] == "ssm:GetParameter":
                s["Resource"].append({"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmParameterPath}/directory/*"})
    def entra_without_its_own(d):
        for s in statements(d, "EntraRole"):
            if s["Action"] == "secretsmanager:GetSecretValue":
                s["Resource"] = [{"Ref": "WebhookSecretsArnPattern"}]

    def token_statement(d):
        return next(s for s in _role_statements(Template(d), "EntraRole")
                    if s.get("Action") == "sts:GetWebIdentityToken")
    def intake_mints_tokens(d):
        d["Resources"]["IntakeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            copy.deepcopy(token_statement(d)))
    def long_tokens(d): token_statement(d)["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"] = 3600
    def any_audience(d): token_statement(d)["Condition"].pop("ForAllValues:StringEquals")

    return [
        ("FIFO BatchSize 11", batch_11, "BatchSize 11"),
        ("FIFO batching window", window, "MaximumBatchingWindowInSeconds"),
        ("no ReportBatchItemFailures", no_report, "ReportBatchItemFailures"),
        ("no redrive policy", no_redrive, "no RedrivePolicy"),
        ("visibility under 6x", short_visibility, "VisibilityTimeout"),
        ("function timeout over visibility/6", long_timeout, "VisibilityTimeout"),
        ("Globals timeout over visibility/6", global_timeout, "VisibilityTimeout"),
        ("MaximumConcurrency 1", concurrency_1, "MaximumConcurrency 1"),
        ("BatchSize from a parameter default", batch_param, "BatchSize 25"),
        ("standard DLQ for a FIFO queue", standard_dlq, "must be FIFO"),
        ("Scheduler target without content dedup", scheduler_target_dedup, "ContentBasedDeduplication"),
        ("SAM SQS event with BatchSize 50", sam_sqs_event, "BatchSize 50"),
        ("GetAtt of a missing SAM resource", bad_getatt, "IntakeFunctionUrlx"),
        ("Ref to a missing function", bad_ref, "NoSuchFunction"),
        ("intake reads every secret", every_secret, "IntakeRole: secretsmanager:GetSecretValue on a resource beyond"),
        ("writeback reads the directory credential", writeback_reads_directory, "WritebackRole: ssm:GetParameter on another stage's secrets: ['directory']"),
        ("entra reads webhook secrets, not its own", entra_without_its_own, "EntraRole: secretsmanager:GetSecretValue lacks its own"),
        ("intake may mint STS tokens", intake_mints_tokens, "IntakeRole: sts:GetWebIdentityToken outside"),
        ("STS tokens for an hour", long_tokens, "EntraRole: sts:GetWebIdentityToken without NumericLessThanEquals"),
        ("STS tokens for any audience", any_audience, "EntraRole: sts:GetWebIdentityToken not limited"),
    ]


def self_test(text: str) -> list[str]:
    failures = []
    doc = load(text)
    for label, mutate, expected in _mutations(doc):
        broken = copy.deepcopy(doc)
        mutate(broken)
        found = check(broken)
        if not any(expected in line for line in found):
            failures.append(f"self-test: '{label}' was not caught (expected a finding with {expected!r}; got {found})")
    if not aliases("a: &x 1\nb: *x\n"):
        failures.append("self-test: a YAML alias was not caught")
    return failures


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or any(a not in ("--self-test",) for a in argv if a.startswith("--")):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as fh:
        text = fh.read()
    if "--self-test" in argv:
        failures = self_test(text)
        for line in failures:
            print(line)
        print(f"check_limits self-test: {len(_mutations(load(text))) + 1 - len(failures)} breaks caught, {len(failures)} missed")
        return 1 if failures else 0
    findings = aliases(text) + check(load(text))
    for line in findings:
        print(f"{args[0]}: {line}")
    t = Template(load(text))
    print(f"check_limits: {len(t.consumers([]))} queue consumers checked, {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
