"""Where moto differs from AWS, or is too slow to run a marketplace on: one patch module per service.

Each patch fixes one named deviation, is installed by its module's ``install()`` and has a test that
shows the deviation on plain moto and its absence with the patch (tests/emulator), so that a moto
upgrade that cures a deviation is noticed and the patch can go (docs/decisions.md, D5).

* :mod:`.engine`: the Step Functions engine (strict Choice, States.ALL without States.Runtime, a
  driveable clock, MockConfigFile test cases, ...);
* :mod:`.dynamodb_fixes`: DynamoDB queries that read only their partition;
* :mod:`.fast_serialize`: the response serializer's per-shape cache;
* :mod:`.asl_cache`: definitions and JSONPaths parsed once;
* :mod:`.iam_enforcement`: moto's IAM evaluation given each request's real resource, action and AWS's
  error (D50).
"""
