import test from 'ava';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { reasonForGrpcError } from '../../../src/identity/ca-client';
import { grpcTarget as caTarget } from '../../../src/identity/ca-credentials';

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

test('gRPC status → Reason: each failure class gets its own code', (t) => {
  t.is(reasonForGrpcError(grpcError(status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1')), 'CA_UNREACHABLE');
  t.is(reasonForGrpcError(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded')), 'CA_UNREACHABLE');
  t.is(reasonForGrpcError(grpcError(status.UNAVAILABLE, 'No connection established. Last error: Error: unable to verify the first certificate')), 'CA_TLS');
  t.is(reasonForGrpcError(grpcError(status.UNAVAILABLE, "Hostname/IP does not match certificate's altnames")), 'CA_TLS');
  t.is(reasonForGrpcError(grpcError(status.UNAUTHENTICATED, 'unknown bearer token')), 'CA_AUTH');
  t.is(reasonForGrpcError(grpcError(status.PERMISSION_DENIED, 'may not impersonate')), 'CA_AUTH');
  t.is(reasonForGrpcError(grpcError(status.INVALID_ARGUMENT, 'bad CSR')), 'CA_REJECTED');
  t.is(reasonForGrpcError(grpcError(status.UNIMPLEMENTED, 'no such method')), 'CA_REJECTED');
});

test('CA_ADDRESS: the https:// scheme is optional', (t) => {
  t.is(caTarget('https://istiod.istio-system.svc:15012'), 'istiod.istio-system.svc:15012');
  t.is(caTarget('localhost:15012'), 'localhost:15012');
  t.is(caTarget('https://[::1]:15012/'), '[::1]:15012');
});
