# One image for the backend and the precompute workers.
#   docker build .                                   SAM family on CPU torch (the default)
#   docker build --build-arg EXTRAS= .               base install only: no torch
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 .   CUDA torch
FROM python:3.11-slim

ARG EXTRAS=sam
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# torch first, from the index that picks CPU or CUDA: the largest layer, and it changes least often.
RUN case ",${EXTRAS}," in *,sam,*) \
        pip install torch==2.14.1 torchvision==0.29.1 --index-url "${TORCH_INDEX_URL}" ;; \
    esac

COPY pyproject.toml README.md ./
COPY ml_backend ./ml_backend
RUN pip install ".${EXTRAS:+[${EXTRAS}]}"

# Every folder the server writes to lives on the /data volume, owned by an unprivileged user,
# so nothing is written into the image layer or site-packages.
RUN useradd --create-home --uid 10001 scribble \
    && mkdir -p /data/models /data/results /data/cache \
    && chown -R scribble:scribble /data
ENV PORT=9090 MODEL_DIR=/data/models RESULT_DIR=/data/results CACHE_DIR=/data/cache
USER scribble
VOLUME ["/data"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9090'), timeout=2)"
CMD ["scribble-seg", "serve"]
