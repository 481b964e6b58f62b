// placeholder: replaced as the layer grows
namespace chainfs {}
