"""gRPC wire types: generated from proto/grpc_predict_v2.proto (`make proto`)."""
